//! The `log` provider, for development: it logs that a message would go out (its name and
//! channel, never its address or content) and accepts it.

use super::{Accepted, Adapter, Outgoing, SendError};

#[derive(Debug)]
pub struct LogAdapter {
    name: String,
}

impl LogAdapter {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
        }
    }
}

#[tonic::async_trait]
impl Adapter for LogAdapter {
    async fn send(&self, outgoing: &Outgoing<'_>) -> Result<Accepted, SendError> {
        tracing::info!(
            provider = %self.name,
            message = outgoing.message,
            channel = outgoing.channel.as_str_name(),
            attempt = outgoing.attempt,
            "log provider: message delivered"
        );
        Ok(Accepted {
            provider_message_id: format!("log-{}", uuid::Uuid::now_v7()),
        })
    }
}
