//! `throughline events tail`: a service's event log on the terminal, for debugging.

use throughline_proto::event::v1::SubscribeRequest;
use throughline_proto::event::v1::event_log_service_client::EventLogServiceClient;
use throughline_proto::event::v1::subscribe_response::Item;
use throughline_runtime::{client, shutdown};

/// Prints events until interrupted or the server ends the stream.
pub async fn tail(
    endpoint: String,
    token: String,
    source: String,
    event_types: Vec<String>,
    from_cursor: String,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut events = EventLogServiceClient::new(client::channel(&endpoint)?);
    let mut request = tonic::Request::new(SubscribeRequest {
        source,
        from_cursor,
        event_types,
    });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let mut stream = events.subscribe(request).await?.into_inner();
    let interrupted = shutdown::signal();
    tokio::pin!(interrupted);
    loop {
        let item = tokio::select! {
            () = &mut interrupted => return Ok(()),
            item = stream.message() => item?,
        };
        let Some(item) = item else {
            return Ok(());
        };
        match item.item {
            Some(Item::Event(event)) => {
                let time = event
                    .time
                    .and_then(|t| {
                        chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?)
                    })
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default();
                println!(
                    "{}\t{time}\t{}\t{}\t{}\t{}",
                    item.cursor, event.tenant, event.r#type, event.subject, event.id
                );
            }
            Some(Item::CaughtUp(_)) => eprintln!("-- caught up at {}", item.cursor),
            None => {}
        }
    }
}
