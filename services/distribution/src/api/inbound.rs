//! RecordInbound: a provider's receipt or a customer's reply, reported over gRPC (the HTTP
//! endpoint in `inbound_http` takes the same reports from providers directly).

use throughline_proto::distribution::v1::*;
use throughline_runtime::Error;

use super::Api;

impl Api {
    pub(super) async fn record_inbound(
        &self,
        tenant: &str,
        request: RecordInboundRequest,
    ) -> Result<RecordInboundResponse, Error> {
        let inbound = request
            .inbound
            .ok_or_else(|| Error::invalid("inbound", "is required"))?;
        let known = self
            .service
            .delivery
            .providers
            .iter()
            .any(|state| state.provider.name == inbound.provider);
        if !known {
            return Err(Error::invalid(
                "inbound.provider",
                "must name a configured provider",
            ));
        }
        let result = match &inbound.kind {
            Some(inbound::Kind::Receipt(receipt)) => {
                self.service
                    .record_receipt(tenant, &inbound.provider, receipt)
                    .await?
            }
            Some(inbound::Kind::Reply(reply)) => {
                self.service
                    .record_reply(tenant, &inbound.provider, reply)
                    .await?
            }
            None => return Err(Error::invalid("inbound", "needs a receipt or a reply")),
        };
        Ok(RecordInboundResponse {
            result: Some(result),
        })
    }
}
