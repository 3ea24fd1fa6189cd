//! The profile service on PostgreSQL with a large seeded population: GetProfile,
//! ResolveIdentity of a known email, and CheckConsent by email, each through the full server
//! stack (auth included) in this process.
//!
//! The population (`--profiles`, one million by default) is seeded once with set-based SQL
//! into a database named after its size, and reused by later runs. PostgreSQL comes from
//! `THROUGHLINE_BENCH_DATABASE_URL`, else `THROUGHLINE_TEST_DATABASE_URL`, else the local
//! server at 127.0.0.1:5432.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use throughline::Config;
use throughline_proto::common::v1::{
    Channel, ConsentStatus, CustomerRef, Identifier, IdentifierType, Purpose, customer_ref,
};
use throughline_proto::profile::v1::profile_service_client::ProfileServiceClient;
use throughline_proto::profile::v1::{
    CheckConsentRequest, GetProfileRequest, ResolutionOutcome, ResolveIdentityRequest,
};
use throughline_runtime::config::Sources;
use tonic::Status;
use tonic::metadata::MetadataValue;
use tonic::transport::Endpoint;

use crate::database::{server_url, setup_error, with_database};
use crate::{BenchError, Scenario, Target};

const SECRET: &str = "throughline-bench-secret-0123456789abcdef";
const TENANT: &str = "bench";

fn config(url: &str) -> Result<Config, BenchError> {
    let env = HashMap::from([
        ("THROUGHLINE__DATABASE__URL".to_owned(), url.to_owned()),
        (
            "THROUGHLINE__DATABASE__MAX_CONNECTIONS".to_owned(),
            "16".to_owned(),
        ),
        (
            "THROUGHLINE__AUTH__HS256_SECRET".to_owned(),
            SECRET.to_owned(),
        ),
        (
            "THROUGHLINE__SERVER__SERVICES".to_owned(),
            "profile".to_owned(),
        ),
        (
            "THROUGHLINE__SERVER__METRICS_LISTEN_ADDR".to_owned(),
            String::new(),
        ),
        (
            "THROUGHLINE__TELEMETRY__LOG_LEVEL".to_owned(),
            "warn".to_owned(),
        ),
    ]);
    Config::load(Sources {
        env: Some(env),
        ..Sources::default()
    })
    .map_err(setup_error)
}

async fn execute(db: &DatabaseConnection, sql: &str) -> Result<(), BenchError> {
    db.execute_unprepared(sql).await.map_err(setup_error)?;
    Ok(())
}

async fn count(db: &DatabaseConnection, sql: &str) -> Result<i64, BenchError> {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .map_err(setup_error)?
        .ok_or_else(|| setup_error("no row"))?;
    row.try_get_by_index::<i64>(0).map_err(setup_error)
}

/// A database holding `profiles` profiles of tenant `bench`, each with an email identifier
/// `user<n>@example.com` and a granted email-marketing consent; seeded unless already there.
async fn seeded_database(profiles: u64) -> Result<String, BenchError> {
    let server = server_url();
    let name = format!("throughline_bench_profiles_{profiles}");
    let url = with_database(&server, &name);
    let admin = Database::connect(server.as_str())
        .await
        .map_err(|e| setup_error(format!("PostgreSQL for the profile benchmarks: {e}")))?;
    let exists = count(
        &admin,
        &format!("SELECT count(*)::bigint FROM pg_database WHERE datname = '{name}'"),
    )
    .await?
        > 0;
    if exists {
        let config = config(&url)?;
        throughline::app::migrate_services(&config, &["profile".to_owned()])
            .await
            .map_err(setup_error)?;
        let db = throughline_runtime::db::connect(&config.database, "profile")
            .await
            .map_err(setup_error)?;
        let held = count(&db, "SELECT count(*)::bigint FROM profile_consents").await?;
        db.close().await.map_err(setup_error)?;
        if held == profiles as i64 {
            return Ok(url);
        }
        // A seeding that did not finish: start again.
        execute(&admin, &format!("DROP DATABASE \"{name}\" WITH (FORCE)")).await?;
    }
    execute(&admin, &format!("CREATE DATABASE \"{name}\"")).await?;
    admin.close().await.map_err(setup_error)?;

    let config = config(&url)?;
    throughline::app::migrate_services(&config, &["profile".to_owned()])
        .await
        .map_err(setup_error)?;
    let db = throughline_runtime::db::connect(&config.database, "profile")
        .await
        .map_err(setup_error)?;
    let started = Instant::now();
    eprintln!("seeding {profiles} profiles into {name} (once; later runs reuse it)");
    let base = chrono_base();
    // `data` is an encoded Profile: given_name (field 4) and email (field 6).
    execute(
        &db,
        &format!(
            "INSERT INTO profile_profiles (id, tenant, state, merged_into, data, version, created_us, updated_us) \
             SELECT 'b' || lpad(g::text, 12, '0'), '{TENANT}', 1, NULL, \
                    '\\x2208437573746f6d6572'::bytea || '\\x32'::bytea \
                      || set_byte('\\x00'::bytea, 0, length('user' || g || '@example.com')) \
                      || convert_to('user' || g || '@example.com', 'UTF8'), \
                    1, {base} + g, {base} + g \
             FROM generate_series(1, {profiles}) AS g"
        ),
    )
    .await?;
    execute(
        &db,
        &format!(
            "INSERT INTO profile_identifiers (tenant, kind, source, value, profile_id, created_us) \
             SELECT '{TENANT}', 1, '', 'user' || g || '@example.com', 'b' || lpad(g::text, 12, '0'), {base} + g \
             FROM generate_series(1, {profiles}) AS g"
        ),
    )
    .await?;
    execute(
        &db,
        &format!(
            "INSERT INTO profile_consents (tenant, profile_id, channel, purpose, status, source, evidence, effective_us, record_us, recorded_by) \
             SELECT '{TENANT}', 'b' || lpad(g::text, 12, '0'), {email}, {marketing}, {granted}, 'bench', '', {base} + g, {base} + g, 'bench' \
             FROM generate_series(1, {profiles}) AS g",
            email = Channel::Email as i32,
            marketing = Purpose::Marketing as i32,
            granted = ConsentStatus::Granted as i32,
        ),
    )
    .await?;
    // As autovacuum would leave it: statistics, and a visibility map for index-only scans.
    execute(&db, "VACUUM ANALYZE").await?;
    eprintln!(
        "seeded {profiles} profiles in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    db.close().await.map_err(setup_error)?;
    Ok(url)
}

fn chrono_base() -> i64 {
    // A fixed past instant (2026-01-01T00:00:00Z) in microseconds, so reruns agree.
    1_767_225_600_000_000
}

async fn start(profiles: u64) -> Result<Target, BenchError> {
    let url = seeded_database(profiles).await?;
    let db = Database::connect(url.as_str()).await.map_err(setup_error)?;
    crate::database::warm(&db, "profile").await?;
    db.close().await.map_err(setup_error)?;
    let config = config(&url)?;
    let (address, stop) = crate::stack::serve_in_process(&config).await?;
    let endpoint = Endpoint::from_shared(format!("http://{address}"))?;
    Ok(Target::in_process(endpoint, stop))
}

/// The callers' credentials: every profile scope of tenant `bench`.
fn authorization() -> MetadataValue<tonic::metadata::Ascii> {
    let scopes = ["profile:read".to_owned(), "profile:write".to_owned()];
    let token = throughline_runtime::auth::issue_token(
        SECRET,
        "bench",
        TENANT,
        &scopes,
        Duration::from_secs(24 * 3600),
    )
    .unwrap_or_default();
    format!("Bearer {token}")
        .parse()
        .unwrap_or_else(|_| MetadataValue::from_static(""))
}

/// The seeded customer a call asks about: spread over the population.
fn customer(seq: u64, profiles: u64) -> u64 {
    seq.wrapping_mul(2_654_435_761) % profiles.max(1) + 1
}

fn request<T>(message: T, auth: &MetadataValue<tonic::metadata::Ascii>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", auth.clone());
    request
}

fn email(n: u64) -> Identifier {
    Identifier {
        r#type: IdentifierType::Email as i32,
        value: format!("user{n}@example.com"),
        source: String::new(),
    }
}

pub fn profile_get_scenario(profiles: u64) -> Scenario {
    let auth = Arc::new(authorization());
    Scenario::new(
        "profile-get",
        move || start(profiles),
        move |channel, seq| {
            let auth = auth.clone();
            async move {
                let name = format!("profiles/b{:012}", customer(seq, profiles));
                let response = ProfileServiceClient::new(channel)
                    .get_profile(request(GetProfileRequest { name }, &auth))
                    .await?;
                match response.into_inner().profile {
                    Some(_) => Ok(()),
                    None => Err(Status::internal("no profile")),
                }
            }
        },
    )
    .with_description(format!(
        "profile service on PostgreSQL, {profiles} profiles: GetProfile of a random customer \
         (auth, 4 indexed reads)"
    ))
}

pub fn profile_resolve_scenario(profiles: u64) -> Scenario {
    let auth = Arc::new(authorization());
    Scenario::new(
        "profile-resolve",
        move || start(profiles),
        move |channel, seq| {
            let auth = auth.clone();
            async move {
                let response = ProfileServiceClient::new(channel)
                    .resolve_identity(request(
                        ResolveIdentityRequest {
                            identifiers: vec![email(customer(seq, profiles))],
                            ..Default::default()
                        },
                        &auth,
                    ))
                    .await?;
                if response.get_ref().outcome == ResolutionOutcome::Matched as i32 {
                    Ok(())
                } else {
                    Err(Status::internal("a known email did not match"))
                }
            }
        },
    )
    .with_description(format!(
        "profile service on PostgreSQL, {profiles} profiles: ResolveIdentity of a known email"
    ))
}

pub fn profile_check_consent_scenario(profiles: u64) -> Scenario {
    let auth = Arc::new(authorization());
    Scenario::new(
        "profile-check-consent",
        move || start(profiles),
        move |channel, seq| {
            let auth = auth.clone();
            async move {
                let response = ProfileServiceClient::new(channel)
                    .check_consent(request(
                        CheckConsentRequest {
                            customer: Some(CustomerRef {
                                customer: Some(customer_ref::Customer::Identifier(email(
                                    customer(seq, profiles),
                                ))),
                            }),
                            channel: Channel::Email as i32,
                            purpose: Purpose::Marketing as i32,
                        },
                        &auth,
                    ))
                    .await?;
                if response.get_ref().status == ConsentStatus::Granted as i32 {
                    Ok(())
                } else {
                    Err(Status::internal("consent not found"))
                }
            }
        },
    )
    .with_description(format!(
        "profile service on PostgreSQL, {profiles} profiles: CheckConsent by email \
         (identifier look-up, then the newest decision)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customers_stay_in_the_population() {
        for seq in 0..10_000 {
            assert!((1..=1000).contains(&customer(seq, 1000)));
        }
    }
}
