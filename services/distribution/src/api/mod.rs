//! The gRPC adapter of the distribution service: checks requests, scopes every query to the
//! caller's tenant, and maps the store's answers to the contract.

mod inbound;
mod messages;
mod policy;
mod templates;
mod webhooks;

use throughline_proto::distribution::v1::distribution_service_server::DistributionService;
use throughline_proto::distribution::v1::*;
use throughline_runtime::auth::principal;
use tonic::{Request, Response, Status};

use crate::Service;

/// Implements `DistributionService`.
#[derive(Debug, Clone)]
pub struct Api {
    service: Service,
}

impl Api {
    pub fn new(service: Service) -> Self {
        Self { service }
    }
}

/// The caller's tenant: every query filters by it.
fn tenant<T>(request: &Request<T>) -> Result<String, Status> {
    Ok(principal(request)?.tenant.clone())
}

pub(crate) use throughline_runtime::request::{UpdateMask, is_resource_id, page_size, resource_id};

/// A tenant as a path segment names it: printable, at most 128 characters.
pub(crate) fn is_tenant(tenant: &str) -> bool {
    (1..=128).contains(&tenant.len()) && !tenant.chars().any(|c| c.is_control() || c == '/')
}

/// The service's RPCs: each passes the caller's tenant and the request to the handler of the
/// same name on `Api`. RPCs not listed answer UNIMPLEMENTED (the generated defaults).
macro_rules! rpcs {
    ($($method:ident($request:ty) -> $response:ty;)*) => {
        #[tonic::async_trait]
        impl DistributionService for Api {
            $(
                async fn $method(
                    &self,
                    request: Request<$request>,
                ) -> Result<Response<$response>, Status> {
                    let tenant = tenant(&request)?;
                    Ok(Response::new(
                        Api::$method(self, &tenant, request.into_inner()).await?,
                    ))
                }
            )*
        }
    };
}

rpcs! {
    create_template(CreateTemplateRequest) -> CreateTemplateResponse;
    get_template(GetTemplateRequest) -> GetTemplateResponse;
    list_templates(ListTemplatesRequest) -> ListTemplatesResponse;
    update_template(UpdateTemplateRequest) -> UpdateTemplateResponse;
    delete_template(DeleteTemplateRequest) -> DeleteTemplateResponse;
    render_template(RenderTemplateRequest) -> RenderTemplateResponse;
    send(SendRequest) -> SendResponse;
    send_multi(SendMultiRequest) -> SendMultiResponse;
    get_message(GetMessageRequest) -> GetMessageResponse;
    list_messages(ListMessagesRequest) -> ListMessagesResponse;
    cancel_message(CancelMessageRequest) -> CancelMessageResponse;
    add_suppression(AddSuppressionRequest) -> AddSuppressionResponse;
    remove_suppression(RemoveSuppressionRequest) -> RemoveSuppressionResponse;
    list_suppressions(ListSuppressionsRequest) -> ListSuppressionsResponse;
    get_contact_policy(GetContactPolicyRequest) -> GetContactPolicyResponse;
    update_contact_policy(UpdateContactPolicyRequest) -> UpdateContactPolicyResponse;
    get_contact_budget_usage(GetContactBudgetUsageRequest) -> GetContactBudgetUsageResponse;
    list_providers(ListProvidersRequest) -> ListProvidersResponse;
    record_inbound(RecordInboundRequest) -> RecordInboundResponse;
    create_webhook_subscription(CreateWebhookSubscriptionRequest) -> CreateWebhookSubscriptionResponse;
    get_webhook_subscription(GetWebhookSubscriptionRequest) -> GetWebhookSubscriptionResponse;
    list_webhook_subscriptions(ListWebhookSubscriptionsRequest) -> ListWebhookSubscriptionsResponse;
    update_webhook_subscription(UpdateWebhookSubscriptionRequest) -> UpdateWebhookSubscriptionResponse;
    delete_webhook_subscription(DeleteWebhookSubscriptionRequest) -> DeleteWebhookSubscriptionResponse;
    list_webhook_deliveries(ListWebhookDeliveriesRequest) -> ListWebhookDeliveriesResponse;
}
