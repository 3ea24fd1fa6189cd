//! What the distribution tests share: the client, sends, waiting for a status, violations.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use throughline_harness::Authenticated;
use throughline_proto::distribution::v1::distribution_service_client::DistributionServiceClient;
use throughline_proto::distribution::v1::{GetMessageRequest, Message, MessageStatus, SendRequest};

pub type Client = DistributionServiceClient<Authenticated>;

pub async fn send(client: &mut Client, request: SendRequest) -> Message {
    client
        .send(request)
        .await
        .unwrap()
        .into_inner()
        .message
        .unwrap()
}

pub async fn message(client: &mut Client, name: &str) -> Message {
    client
        .get_message(GetMessageRequest { name: name.into() })
        .await
        .unwrap()
        .into_inner()
        .message
        .unwrap()
}

/// Polls until the message reaches `status` (15 s at most).
pub async fn wait_for(client: &mut Client, name: &str, status: MessageStatus) -> Message {
    let mut last = None;
    for _ in 0..300 {
        let message = message(client, name).await;
        if message.status == status as i32 {
            return message;
        }
        last = Some(message);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name} never reached {status:?}: {last:?}");
}
