//! The gRPC adapter of the distribution service: checks requests, scopes every query to the
//! caller's tenant, and maps the store's answers to the contract.

mod inbound;
mod messages;
mod policy;
mod templates;
mod webhooks;

use throughline_proto::distribution::v1::distribution_service_server::DistributionService;
use throughline_proto::distribution::v1::*;
use throughline_runtime::Error;
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

/// `{collection}/{id}` → `id`.
pub(crate) fn resource_id<'a>(
    name: &'a str,
    collection: &str,
    field: &str,
) -> Result<&'a str, Error> {
    name.strip_prefix(collection)
        .and_then(|rest| rest.strip_prefix('/'))
        .filter(|id| is_resource_id(id))
        .ok_or_else(|| Error::invalid(field, format!("must be {collection}/{{id}}")))
}

/// AIP-122 ids: lower-case letters, digits and hyphens, 1 to 63 characters (service-assigned
/// ids are UUIDs, which fit).
pub(crate) fn is_resource_id(id: &str) -> bool {
    (1..=63).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A tenant as a path segment names it: printable, at most 128 characters.
pub(crate) fn is_tenant(tenant: &str) -> bool {
    (1..=128).contains(&tenant.len()) && !tenant.chars().any(|c| c.is_control() || c == '/')
}

/// The fields an update request's `update_mask` names; `*` names every updatable field.
pub(crate) struct UpdateMask(Vec<String>);

impl UpdateMask {
    /// Checks `mask` against the fields that can be updated: it is required, and every path
    /// must be one of them (violations name `update_mask.paths[i]`).
    pub(crate) fn parse(
        mask: Option<prost_types::FieldMask>,
        updatable: &[&str],
    ) -> Result<Self, Error> {
        let paths = mask.map(|mask| mask.paths).unwrap_or_default();
        if paths.is_empty() {
            return Err(Error::invalid(
                "update_mask",
                "is required: the fields to update",
            ));
        }
        let violations = paths
            .iter()
            .enumerate()
            .filter(|(_, path)| *path != "*" && !updatable.contains(&path.as_str()))
            .map(|(index, _)| {
                throughline_runtime::FieldViolation::new(
                    format!("update_mask.paths[{index}]"),
                    format!("not updatable; updatable: {}", updatable.join(", ")),
                )
            })
            .collect();
        Error::unless_valid(violations)?;
        Ok(Self(paths))
    }

    /// Whether the mask names `field`.
    pub(crate) fn has(&self, field: &str) -> bool {
        self.0.iter().any(|path| path == "*" || path == field)
    }
}

/// Default 20, at most 1000 (larger sizes are reduced, as AIP-158 allows).
pub(crate) fn page_size(value: i32) -> Result<usize, Error> {
    match value {
        0 => Ok(20),
        size if size < 0 => Err(Error::invalid("page_size", "must not be negative")),
        size => Ok(usize::try_from(size.min(1000)).unwrap_or(1000)),
    }
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
