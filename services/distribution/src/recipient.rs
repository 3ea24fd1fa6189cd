//! Who a message is for: a profile, read from the profile service (addresses, language, time
//! zone, quiet hours, channel ranking, budget override, consents), or an explicit address.

use std::collections::HashMap;

use chrono_tz::Tz;
use throughline_proto::common::v1::{
    Channel, ConsentStatus, ContactBudget, IdentifierType, LocalTimeWindow, Purpose,
};
use throughline_proto::distribution::v1::{Address, Recipient, address, recipient};
use throughline_proto::profile::v1::profile_service_client::ProfileServiceClient;
use throughline_proto::profile::v1::{GetProfileRequest, Profile, ProfileState};
use throughline_runtime::peers::Peers;
use throughline_runtime::{Error, FieldViolation};

use throughline_runtime::peers as peer;

/// The profile service's name among the peers.
const PROFILE_SERVICE: &str = "profile";

/// What the send path knows about the recipient.
#[derive(Debug, Clone)]
pub struct Audience {
    /// `profiles/{id}` of a profile recipient (the surviving one after a merge); empty for an
    /// explicit address.
    pub profile: String,
    /// Whose contact budget the message counts against: the profile, or the address.
    pub budget_holder: String,
    pub locale: String,
    pub zone: Tz,
    pub quiet_hours: Option<LocalTimeWindow>,
    pub ranking: Vec<Channel>,
    pub budget: Option<ContactBudget>,
    consents: HashMap<(i32, i32), ConsentStatus>,
    email: String,
    phone: String,
    device_token: String,
    /// The profile's personal data is erased: nothing may be sent.
    pub erased: bool,
    /// The template variable `profile`.
    pub variables: serde_json::Value,
}

impl Audience {
    /// The address for `channel`, normalised, with its kind (`email:…`), or `None`.
    pub fn address(&self, channel: Channel) -> Option<AddressOf<'_>> {
        let (kind, value) = match channel {
            Channel::Email => ("email", self.email.as_str()),
            Channel::Sms | Channel::Whatsapp | Channel::Phone => ("phone", self.phone.as_str()),
            Channel::Push => ("device", self.device_token.as_str()),
            // In-app and chat messages reach the profile itself.
            Channel::InApp | Channel::Chat if !self.profile.is_empty() => {
                ("profile", self.profile.as_str())
            }
            _ => return None,
        };
        (!value.is_empty()).then_some(AddressOf { kind, value })
    }

    /// The recorded consent for a channel and purpose; UNKNOWN when none.
    pub fn consent(&self, channel: Channel, purpose: Purpose) -> ConsentStatus {
        self.consents
            .get(&(channel as i32, purpose as i32))
            .copied()
            .unwrap_or(ConsentStatus::Unknown)
    }
}

/// An address and its kind, as suppressions key it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressOf<'a> {
    pub kind: &'static str,
    pub value: &'a str,
}

impl AddressOf<'_> {
    /// The suppression key: `email:ada@example.com`.
    pub fn key(&self) -> String {
        format!("{}:{}", self.kind, self.value)
    }
}

/// Normalises an explicit address; violations name `field`.
pub fn normalise_address(address: &Address, field: &str) -> Result<(&'static str, String), Error> {
    match &address.address {
        Some(address::Address::Email(email)) => {
            let email = email.trim().to_lowercase();
            let valid = email.len() <= 254
                && email.split_once('@').is_some_and(|(local, domain)| {
                    !local.is_empty()
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
                });
            if valid {
                Ok(("email", email))
            } else {
                Err(Error::invalid(
                    format!("{field}.email"),
                    "not an email address",
                ))
            }
        }
        Some(address::Address::Phone(phone)) => {
            let phone = phone.trim();
            let digits = phone.strip_prefix('+').unwrap_or("");
            if (8..=15).contains(&digits.len())
                && digits.bytes().all(|b| b.is_ascii_digit())
                && !digits.starts_with('0')
            {
                Ok(("phone", phone.to_owned()))
            } else {
                Err(Error::invalid(
                    format!("{field}.phone"),
                    "must be an E.164 number such as +33612345678",
                ))
            }
        }
        Some(address::Address::DeviceToken(token)) => {
            if token.is_empty() || token.len() > 4096 || token.chars().any(char::is_control) {
                Err(Error::invalid(
                    format!("{field}.device_token"),
                    "must be 1 to 4096 printable characters",
                ))
            } else {
                Ok(("device", token.clone()))
            }
        }
        None => Err(Error::invalid(field, "is required")),
    }
}

/// Parses an IANA zone; violations name `field`.
pub fn parse_zone(zone: &str, field: &str) -> Result<Option<Tz>, Error> {
    if zone.is_empty() {
        return Ok(None);
    }
    zone.parse::<Tz>()
        .map(Some)
        .map_err(|_| Error::invalid(field, "not an IANA time zone"))
}

/// Checks a recipient without looking anything up.
pub fn validate(recipient: Option<&Recipient>, violations: &mut Vec<FieldViolation>) {
    let Some(recipient) = recipient else {
        violations.push(FieldViolation::new("recipient", "is required"));
        return;
    };
    match &recipient.recipient {
        Some(recipient::Recipient::Profile(name)) => {
            if crate::api::resource_id(name, "profiles", "recipient.profile").is_err() {
                violations.push(FieldViolation::new(
                    "recipient.profile",
                    "must be profiles/{profile}",
                ));
            }
        }
        Some(recipient::Recipient::Address(address)) => {
            if let Err(Error::InvalidArgument(found)) =
                normalise_address(address, "recipient.address")
            {
                violations.extend(found);
            }
        }
        None => violations.push(FieldViolation::new(
            "recipient",
            "needs a profile or an address",
        )),
    }
    if let Err(Error::InvalidArgument(found)) =
        parse_zone(&recipient.time_zone, "recipient.time_zone")
    {
        violations.extend(found);
    }
    if recipient.locale.len() > 35 {
        violations.push(FieldViolation::new("recipient.locale", "too long"));
    }
}

/// Reads the recipient's audience; a profile recipient needs the profile service.
pub async fn resolve(
    peers: &Peers,
    tenant: &str,
    recipient: &Recipient,
) -> Result<Audience, Error> {
    let zone_override = parse_zone(&recipient.time_zone, "recipient.time_zone")?;
    let mut audience = match &recipient.recipient {
        Some(recipient::Recipient::Address(address)) => {
            let (kind, value) = normalise_address(address, "recipient.address")?;
            let mut audience = Audience {
                profile: String::new(),
                budget_holder: format!("{kind}:{value}"),
                locale: String::new(),
                zone: Tz::UTC,
                quiet_hours: None,
                ranking: Vec::new(),
                budget: None,
                consents: HashMap::new(),
                email: String::new(),
                phone: String::new(),
                device_token: String::new(),
                erased: false,
                variables: serde_json::Value::Object(serde_json::Map::new()),
            };
            match kind {
                "email" => audience.email = value,
                "phone" => audience.phone = value,
                _ => audience.device_token = value,
            }
            audience
        }
        Some(recipient::Recipient::Profile(name)) => {
            from_profile(fetch_profile(peers, tenant, name).await?)
        }
        None => return Err(Error::invalid("recipient", "needs a profile or an address")),
    };
    if let Some(zone) = zone_override {
        audience.zone = zone;
    }
    if !recipient.locale.is_empty() {
        audience.locale = recipient.locale.clone();
    }
    Ok(audience)
}

/// Reads a profile, following a merge to the surviving profile once.
async fn fetch_profile(peers: &Peers, tenant: &str, name: &str) -> Result<Profile, Error> {
    let Some(channel) = peers.channel(PROFILE_SERVICE, Some(tenant))? else {
        return Err(Error::FailedPrecondition {
            reason: "PROFILE_SERVICE_NOT_DEPLOYED",
            message: "a profile recipient needs the profile service; send to an address instead"
                .to_owned(),
        });
    };
    let mut client = ProfileServiceClient::new(channel);
    let mut name = name.to_owned();
    for _ in 0..2 {
        let request = GetProfileRequest { name: name.clone() };
        let profile = peer::call("profile", client.get_profile(request))
            .await?
            .ok_or_else(|| Error::NotFound(name.clone()))?
            .profile
            .unwrap_or_default();
        if profile.state == ProfileState::Merged as i32 && !profile.merged_into.is_empty() {
            name = profile.merged_into.clone();
            continue;
        }
        return Ok(profile);
    }
    Err(Error::Unavailable(format!("{name} is mid-merge; retry")))
}

fn from_profile(profile: Profile) -> Audience {
    let preferences = profile.preferences.clone().unwrap_or_default();
    let consents = profile
        .consents
        .iter()
        .map(|consent| {
            (
                (consent.channel, consent.purpose),
                ConsentStatus::try_from(consent.status).unwrap_or(ConsentStatus::Unknown),
            )
        })
        .collect();
    let device_token = profile
        .identifiers
        .iter()
        .rev()
        .find(|identifier| identifier.r#type == IdentifierType::DeviceId as i32)
        .map(|identifier| identifier.value.clone())
        .unwrap_or_default();
    let variables = serde_json::json!({
        "name": profile.name,
        "given_name": profile.given_name,
        "family_name": profile.family_name,
        "email": profile.email,
        "phone": profile.phone,
        "language": preferences.language,
        "time_zone": preferences.time_zone,
    });
    Audience {
        budget_holder: profile.name.clone(),
        profile: profile.name,
        locale: preferences.language,
        zone: preferences.time_zone.parse().unwrap_or(Tz::UTC),
        quiet_hours: preferences.quiet_hours,
        ranking: preferences
            .channel_ranking
            .iter()
            .filter_map(|channel| Channel::try_from(*channel).ok())
            .collect(),
        budget: preferences.contact_budget,
        consents,
        email: profile.email,
        phone: profile.phone,
        device_token,
        erased: profile.state == ProfileState::Erased as i32,
        variables,
    }
}
