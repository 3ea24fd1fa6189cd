//! `feedback_invitations`: one row per invitation, and `feedback_contacts`, the fatigue rule's
//! last invitation per customer.

use prost::Message;
use sea_orm::{ConnectionTrait, QueryResult};
use throughline_proto::feedback::v1::{Invitation, InvitationDelivery, InvitationState};
use throughline_runtime::Error;
use throughline_runtime::customer::CustomerKey;
use throughline_runtime::sql::Sql;
use throughline_runtime::time::{PageToken, now_us, timestamp};

use super::counts::{self, Counted, Rows};
use super::{CONTEXT_COLUMNS, context_from_row, context_values};

const COLUMNS: &str = "id, survey_id, survey_version, customer, profile, interaction, thread, \
                       journey, journey_instance, journey_node, channel, touchpoint, request_id, \
                       delivery, state, state_reason, language, message, token, response_id, \
                       create_us, expire_us";

/// `invitations/{id}`.
pub(crate) fn invitation_name(id: &str) -> String {
    format!("invitations/{id}")
}

/// An invitation as stored: the contract's message and the customer's key.
#[derive(Debug, Clone)]
pub(crate) struct StoredInvitation {
    pub id: String,
    pub survey_id: String,
    pub customer: CustomerKey,
    pub invitation: Invitation,
    pub expire_us: i64,
    pub request_id: String,
    /// How to send it, with the template resolved; `None` when the caller presents it.
    pub delivery: Option<InvitationDelivery>,
}

impl StoredInvitation {
    pub(crate) fn state(&self) -> InvitationState {
        InvitationState::try_from(self.invitation.state).unwrap_or(InvitationState::Unspecified)
    }
}

/// States in which an invitation still waits for answers, until it expires.
const OPEN: [InvitationState; 3] = [
    InvitationState::Pending,
    InvitationState::Sent,
    InvitationState::PartiallyAnswered,
];

/// The state an invitation is in at `now`: an open one past its expiry time is expired (no job
/// has to mark it; lists filter the same way).
fn shown_state(stored: i32, expire_us: i64, now: i64) -> i32 {
    let open = OPEN.iter().any(|state| *state as i32 == stored);
    if open && expire_us <= now {
        InvitationState::Expired as i32
    } else {
        stored
    }
}

fn from_row(row: &QueryResult, survey_base_url: &str) -> Result<StoredInvitation, Error> {
    let id: String = row.try_get("", "id")?;
    let survey_id: String = row.try_get("", "survey_id")?;
    let customer = CustomerKey::from_stored(row.try_get("", "customer")?);
    let token: String = row.try_get("", "token")?;
    let response_id: String = row.try_get("", "response_id")?;
    let create_us: i64 = row.try_get("", "create_us")?;
    let expire_us: i64 = row.try_get("", "expire_us")?;
    let delivery: Vec<u8> = row.try_get("", "delivery")?;
    let delivery = if delivery.is_empty() {
        None
    } else {
        Some(InvitationDelivery::decode(delivery.as_slice()).map_err(Error::internal)?)
    };
    let invitation = Invitation {
        name: invitation_name(&id),
        survey: super::surveys::survey_name(&survey_id),
        survey_version: row.try_get("", "survey_version")?,
        customer: Some(customer.to_ref()),
        profile: row.try_get("", "profile")?,
        context: Some(context_from_row(row)?),
        state: shown_state(row.try_get("", "state")?, expire_us, now_us()),
        state_reason: row.try_get("", "state_reason")?,
        language: row.try_get("", "language")?,
        message: row.try_get("", "message")?,
        survey_url: format!("{survey_base_url}{token}"),
        response: if response_id.is_empty() {
            String::new()
        } else {
            super::responses::response_name(&response_id)
        },
        create_time: Some(timestamp(create_us)),
        expire_time: Some(timestamp(expire_us)),
    };
    Ok(StoredInvitation {
        id,
        survey_id,
        customer,
        invitation,
        expire_us,
        request_id: row.try_get("", "request_id")?,
        delivery,
    })
}

/// Saves a new invitation. Its token is its id: invitation ids are random UUIDs, so the survey
/// URL can name the invitation without another secret to keep.
pub(crate) async fn insert(
    db: &impl ConnectionTrait,
    tenant: &str,
    stored: &StoredInvitation,
) -> Result<(), Error> {
    let invitation = &stored.invitation;
    let create_us = invitation
        .create_time
        .as_ref()
        .and_then(throughline_runtime::time::timestamp_us)
        .unwrap_or_default();
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "INSERT INTO feedback_invitations (tenant, id, survey_id, survey_version, customer, \
         profile, recorded_profile, {}, request_id, delivery, state, state_reason, language, message, token, response_id, create_us, \
         expire_us) VALUES ",
        CONTEXT_COLUMNS.join(", ")
    ));
    let mut values: Vec<sea_orm::Value> = vec![
        tenant.into(),
        stored.id.clone().into(),
        stored.survey_id.clone().into(),
        invitation.survey_version.into(),
        stored.customer.as_str().into(),
        invitation.profile.clone().into(),
        invitation.profile.clone().into(),
    ];
    values.extend(context_values(
        &invitation.context.clone().unwrap_or_default(),
    ));
    values.extend([
        stored.request_id.clone().into(),
        stored
            .delivery
            .as_ref()
            .map(Message::encode_to_vec)
            .unwrap_or_default()
            .into(),
        invitation.state.into(),
        invitation.state_reason.clone().into(),
        invitation.language.clone().into(),
        invitation.message.clone().into(),
        stored.id.clone().into(),
        String::new().into(),
        create_us.into(),
        stored.expire_us.into(),
    ]);
    sql.bind_list(values);
    db.execute_raw(sql.statement()).await?;
    counts::record(db, 1, &[by_id(tenant, &[&stored.id])]).await
}

/// The invitations of `tenant` among `ids`, for their counts.
fn by_id<'a>(tenant: &'a str, ids: &'a [&'a str]) -> (Counted, Rows<'a>) {
    (
        Counted::Invitations,
        Rows::Where {
            tenant,
            column: "id",
            values: ids,
        },
    )
}

/// The first invitation of `tenant` whose `column` is `value`, newest first.
async fn find_by(
    db: &impl ConnectionTrait,
    tenant: &str,
    column: &str,
    value: &str,
    survey_base_url: &str,
) -> Result<Option<StoredInvitation>, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "SELECT {COLUMNS} FROM feedback_invitations WHERE tenant = "
    ))
    .bind(tenant)
    .push(&format!(" AND {column} = "))
    .bind(value)
    .push(" ORDER BY create_us DESC LIMIT 1");
    db.query_one_raw(sql.statement())
        .await?
        .map(|row| from_row(&row, survey_base_url))
        .transpose()
}

/// The invitation `id` of `tenant`.
pub(crate) async fn find(
    db: &impl ConnectionTrait,
    tenant: &str,
    id: &str,
    survey_base_url: &str,
) -> Result<Option<StoredInvitation>, Error> {
    find_by(db, tenant, "id", id, survey_base_url).await
}

/// The invitation made by the request `request_id`.
pub(crate) async fn find_by_request(
    db: &impl ConnectionTrait,
    tenant: &str,
    request_id: &str,
    survey_base_url: &str,
) -> Result<Option<StoredInvitation>, Error> {
    find_by(db, tenant, "request_id", request_id, survey_base_url).await
}

/// Records what became of sending an invitation, if it is still pending.
pub(crate) async fn set_outcome(
    db: &impl ConnectionTrait,
    tenant: &str,
    id: &str,
    state: InvitationState,
    reason: &str,
    message: &str,
) -> Result<(), Error> {
    // A throttled or suppressed invitation leaves the response rate's denominator.
    let ids = [id];
    counts::record(db, -1, &[by_id(tenant, &ids)]).await?;
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("UPDATE feedback_invitations SET state = ")
        .bind(state as i32)
        .push(", state_reason = ")
        .bind(reason)
        .push(", message = ")
        .bind(message)
        .push(" WHERE tenant = ")
        .bind(tenant)
        .push(" AND id = ")
        .bind(id)
        .push(" AND state = ")
        .bind(InvitationState::Pending as i32);
    db.execute_raw(sql.statement()).await?;
    counts::record(db, 1, &[by_id(tenant, &ids)]).await
}

/// The invitation that the distribution message `message` (`messages/{id}`) carried.
pub(crate) async fn find_by_message(
    db: &impl ConnectionTrait,
    tenant: &str,
    message: &str,
    survey_base_url: &str,
) -> Result<Option<StoredInvitation>, Error> {
    find_by(db, tenant, "message", message, survey_base_url).await
}

/// The newest invitation sent by message to `profile` that is still open at `now_us`: what a
/// reply without a known `in_reply_to` answers.
pub(crate) async fn latest_open_sent(
    db: &impl ConnectionTrait,
    tenant: &str,
    profile: &str,
    now_us: i64,
    survey_base_url: &str,
) -> Result<Option<StoredInvitation>, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "SELECT {COLUMNS} FROM feedback_invitations WHERE tenant = "
    ))
    .bind(tenant)
    .push(" AND profile = ")
    .bind(profile)
    .push(" AND state IN ")
    .bind_list([
        InvitationState::Sent as i32,
        InvitationState::PartiallyAnswered as i32,
    ])
    .push(" AND expire_us > ")
    .bind(now_us)
    .push(" ORDER BY create_us DESC LIMIT 1");
    db.query_one_raw(sql.statement())
        .await?
        .map(|row| from_row(&row, survey_base_url))
        .transpose()
}

/// Records that answering began or finished.
pub(crate) async fn set_answered(
    db: &impl ConnectionTrait,
    tenant: &str,
    id: &str,
    state: InvitationState,
    response_id: &str,
) -> Result<(), Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("UPDATE feedback_invitations SET state = ")
        .bind(state as i32)
        .push(", response_id = ")
        .bind(response_id)
        .push(" WHERE tenant = ")
        .bind(tenant)
        .push(" AND id = ")
        .bind(id);
    db.execute_raw(sql.statement()).await?;
    Ok(())
}

/// Filters of ListInvitations.
#[derive(Debug, Default)]
pub(crate) struct ListFilter {
    pub survey_id: Option<String>,
    pub customer: Option<CustomerKey>,
    pub states: Vec<i32>,
}

/// A page of invitations, newest first.
pub(crate) async fn list(
    db: &impl ConnectionTrait,
    tenant: &str,
    filter: &ListFilter,
    after: Option<&PageToken>,
    limit: usize,
    survey_base_url: &str,
) -> Result<Vec<StoredInvitation>, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(&format!(
        "SELECT {COLUMNS} FROM feedback_invitations WHERE tenant = "
    ))
    .bind(tenant);
    if let Some(survey_id) = &filter.survey_id {
        sql.push(" AND survey_id = ").bind(survey_id.as_str());
    }
    if let Some(customer) = &filter.customer {
        // A profile finds its invitations whether they were made by profile or identifier.
        match customer.profile() {
            Some(profile) => sql.push(" AND profile = ").bind(profile),
            None => sql.push(" AND customer = ").bind(customer.as_str()),
        };
    }
    if !filter.states.is_empty() {
        // As shown: an open invitation past its expiry time is expired, not open.
        let now = now_us();
        let open = OPEN.map(|state| state as i32);
        let (listed_open, others): (Vec<i32>, Vec<i32>) =
            filter.states.iter().partition(|state| open.contains(state));
        let mut any = " AND (";
        if !others.is_empty() {
            sql.push(any)
                .push("state IN ")
                .bind_list(others.iter().copied());
            any = " OR ";
        }
        if !listed_open.is_empty() {
            sql.push(any)
                .push("(state IN ")
                .bind_list(listed_open)
                .push(" AND expire_us > ")
                .bind(now)
                .push(")");
            any = " OR ";
        }
        if others.contains(&(InvitationState::Expired as i32)) {
            sql.push(any)
                .push("(state IN ")
                .bind_list(open)
                .push(" AND expire_us <= ")
                .bind(now)
                .push(")");
        }
        sql.push(")");
    }
    if let Some(token) = after {
        sql.after_page("create_us", token);
    }
    sql.push(" ORDER BY create_us DESC, id DESC LIMIT ")
        .bind(i64::try_from(limit).unwrap_or(i64::MAX));
    db.query_all_raw(sql.statement())
        .await?
        .iter()
        .map(|row| from_row(row, survey_base_url))
        .collect()
}

/// Takes the fatigue rule's slot of `customer` at `now_us` if its last invitation is at least
/// `interval_us` old (or it has none): `false` when it was invited too recently. One statement,
/// so two concurrent requests for one customer cannot both pass.
pub(crate) async fn take_contact_slot(
    db: &impl ConnectionTrait,
    tenant: &str,
    customer: &str,
    now_us: i64,
    interval_us: i64,
) -> Result<bool, Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("INSERT INTO feedback_contacts (tenant, customer, last_invited_us) VALUES ")
        .bind_list::<sea_orm::Value>([tenant.into(), customer.into(), now_us.into()])
        .push(
            " ON CONFLICT (tenant, customer) DO UPDATE SET last_invited_us = \
             excluded.last_invited_us WHERE feedback_contacts.last_invited_us <= ",
        )
        .bind(now_us.saturating_sub(interval_us));
    Ok(db.execute_raw(sql.statement()).await?.rows_affected() == 1)
}

/// Gives back the slot [`take_contact_slot`] took at `taken_us` for invitation `id` when it was
/// not sent after all (unless a later invitation took the slot since): the customer's last
/// invitation is again the newest one that reached them, or none (0, long ago).
pub(crate) async fn give_back_contact_slot(
    db: &impl ConnectionTrait,
    tenant: &str,
    customer: &str,
    id: &str,
    taken_us: i64,
) -> Result<(), Error> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push(
        "UPDATE feedback_contacts SET last_invited_us = COALESCE((SELECT MAX(i.create_us) \
         FROM feedback_invitations i WHERE i.tenant = feedback_contacts.tenant \
         AND (i.profile = feedback_contacts.customer OR i.customer = feedback_contacts.customer) \
         AND i.id <> ",
    )
    .bind(id)
    .push(" AND i.state IN ")
    .bind_list(
        [
            InvitationState::Pending,
            InvitationState::Sent,
            InvitationState::PartiallyAnswered,
            InvitationState::Answered,
            InvitationState::Expired,
        ]
        .map(|state| state as i32),
    )
    .push("), 0) WHERE tenant = ")
    .bind(tenant)
    .push(" AND customer = ")
    .bind(customer)
    .push(" AND last_invited_us = ")
    .bind(taken_us);
    db.execute_raw(sql.statement()).await?;
    Ok(())
}
