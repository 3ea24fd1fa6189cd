//! The templates and surveys a definition names must exist where their services are
//! deployed: checked on create, update and publish through those services' APIs. A service
//! that is not deployed is not asked; one that does not answer makes the check UNAVAILABLE
//! rather than a violation.

use throughline_proto::distribution::v1::GetTemplateRequest;
use throughline_proto::distribution::v1::distribution_service_client::DistributionServiceClient;
use throughline_proto::feedback::v1::feedback_service_client::FeedbackServiceClient;
use throughline_proto::feedback::v1::{GetSurveyRequest, SurveyState};
use throughline_proto::orchestration::v1::JourneyDefinition;
use throughline_proto::orchestration::v1::node::Kind;
use throughline_runtime::peers::{self, Peers};
use throughline_runtime::{Error, FieldViolation};

const DISTRIBUTION: &str = "distribution";
const FEEDBACK: &str = "feedback";

/// The references of `definition` that do not resolve, as violations under `field`.
pub(crate) async fn check(
    peers: &Peers,
    tenant: &str,
    definition: &JourneyDefinition,
    field: &str,
) -> Result<Vec<FieldViolation>, Error> {
    let mut templates = Vec::new();
    let mut surveys = Vec::new();
    for (index, node) in definition.nodes.iter().enumerate() {
        let path = format!("{field}.nodes[{index}]");
        match &node.kind {
            Some(Kind::Send(send)) if !send.template.is_empty() => {
                templates.push((format!("{path}.send.template"), send.template.clone()));
            }
            Some(Kind::RequestFeedback(request)) => {
                if !request.template.is_empty() {
                    templates.push((
                        format!("{path}.request_feedback.template"),
                        request.template.clone(),
                    ));
                }
                if !request.survey.is_empty() {
                    surveys.push((
                        format!("{path}.request_feedback.survey"),
                        request.survey.clone(),
                    ));
                }
            }
            _ => {}
        }
    }
    let mut violations = Vec::new();
    if !templates.is_empty()
        && let Some(channel) = peers.channel(DISTRIBUTION, Some(tenant))?
    {
        let mut client = DistributionServiceClient::new(channel);
        for (path, name) in templates {
            let request = GetTemplateRequest { name: name.clone() };
            if peers::call(DISTRIBUTION, client.get_template(request))
                .await?
                .is_none()
            {
                violations.push(FieldViolation::new(
                    path,
                    format!("no template {name} in the distribution service"),
                ));
            }
        }
    }
    if !surveys.is_empty()
        && let Some(channel) = peers.channel(FEEDBACK, Some(tenant))?
    {
        let mut client = FeedbackServiceClient::new(channel);
        for (path, name) in surveys {
            let request = GetSurveyRequest {
                name: name.clone(),
                version: 0,
            };
            let survey = peers::call(FEEDBACK, client.get_survey(request))
                .await?
                .and_then(|response| response.survey);
            match survey {
                None => violations.push(FieldViolation::new(
                    path,
                    format!("no survey {name} in the feedback service"),
                )),
                Some(survey) if survey.state != SurveyState::Published as i32 => {
                    violations.push(FieldViolation::new(
                        path,
                        format!("{name} is not published: only a published survey invites"),
                    ));
                }
                Some(_) => {}
            }
        }
    }
    Ok(violations)
}
