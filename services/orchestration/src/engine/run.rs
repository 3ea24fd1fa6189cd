//! Running one instance: executes its nodes from where it is until it waits or ends, and
//! gathers what to write (the instance, its steps, contacts, events) for one commit.
//!
//! An instance WAITING at a wait or wait-for-event node that is claimed has come due (the
//! wait is over, or the event did not come in time). WAITING at any other node means a
//! deferred or retried step: the node runs again, its policies checked again, with the same
//! idempotency key.

use chrono_tz::Tz;
use throughline_proto::event::v1::Event;
use throughline_proto::orchestration::v1::node::Kind;
use throughline_proto::orchestration::v1::wait_node::Until;
use throughline_proto::orchestration::v1::{JourneyDefinition, Node};
use throughline_proto::profile::v1::Profile;
use throughline_runtime::Error;
use throughline_runtime::time::duration_us;

use super::effects::{self, Effect};
use super::{events, policies};
use crate::Service;
use crate::definition;
use crate::expr::{self, Kind as ExprKind, Scope};
use crate::store::instances::{Instance, Step, state};

/// Nodes one run may execute before it yields; validation forbids loops without a wait, this
/// bounds a definition that slipped through.
const MAX_NODES_PER_RUN: usize = 100;
/// Attempts at a step that calls another service before the instance fails.
const MAX_ATTEMPTS: i32 = 10;

/// An instance being advanced, and what the advance changed.
#[derive(Debug)]
pub(crate) struct Run {
    pub instance: Instance,
    /// Steps new or changed.
    pub steps: Vec<Step>,
    /// Sequence numbers of steps that sent a message (the frequency cap counts them).
    pub contacts: Vec<i32>,
    pub events: Vec<Event>,
    /// True once the instance ended in this run (its entry stops counting as active).
    pub ended: bool,
    /// Nodes executed.
    pub executed: usize,
    profile: Option<Option<Profile>>,
}

/// Whether to go on to the next node.
enum Flow {
    Continue,
    Stop,
}

impl Run {
    pub(crate) fn new(instance: Instance) -> Self {
        Self {
            instance,
            steps: Vec::new(),
            contacts: Vec::new(),
            events: Vec::new(),
            ended: false,
            executed: 0,
            profile: None,
        }
    }

    /// The step of the node the instance is at.
    pub(crate) fn current(&mut self) -> &mut Step {
        let seq = self.instance.step_count - 1;
        if let Some(index) = self.steps.iter().position(|step| step.seq == seq) {
            return &mut self.steps[index];
        }
        // Stored already: the upsert changes only how it was left.
        self.steps.push(Step {
            seq,
            node_id: self.instance.node.clone(),
            attempts: self.instance.attempt,
            ..Step::default()
        });
        let last = self.steps.len() - 1;
        &mut self.steps[last]
    }

    /// Moves to `node`, a new step.
    pub(crate) fn enter(&mut self, node: &str, now: i64) {
        self.steps.push(Step {
            seq: self.instance.step_count,
            node_id: node.to_owned(),
            enter_us: now,
            ..Step::default()
        });
        self.instance.step_count += 1;
        self.instance.node = node.to_owned();
        self.instance.state = state::RUNNING;
        self.instance.attempt = 0;
        self.instance.wake_us = Some(now);
    }

    /// Leaves the current node with `outcome`.
    fn leave(&mut self, outcome: &str, effect: &str, now: i64) {
        let attempts = self.instance.attempt;
        let step = self.current();
        step.leave_us = Some(now);
        step.outcome = outcome.to_owned();
        if !effect.is_empty() {
            step.effect = effect.to_owned();
        }
        step.attempts = step.attempts.max(attempts);
    }

    /// Leaves the current node for `next`; an empty `next` ends the instance as completed.
    pub(crate) fn follow(&mut self, next: &str, outcome: &str, effect: &str, now: i64) {
        self.leave(outcome, effect, now);
        if next.is_empty() {
            self.end(state::EXITED, "completed", now);
        } else {
            self.enter(next, now);
        }
    }

    /// Ends the instance.
    pub(crate) fn end(&mut self, end_state: i32, reason: &str, now: i64) {
        if !self.instance.is_active() {
            return;
        }
        let step = self.current();
        if step.leave_us.is_none() {
            step.leave_us = Some(now);
        }
        self.instance.state = end_state;
        self.instance.exit_reason = reason.to_owned();
        self.instance.end_us = Some(now);
        self.instance.wake_us = None;
        self.instance.update_us = now;
        self.ended = true;
        self.events.push(events::exited(&self.instance));
    }

    /// Waits at the current node until `until`.
    pub(crate) fn wait(&mut self, until: i64) {
        self.instance.state = state::WAITING;
        self.instance.wake_us = Some(until);
    }

    /// The idempotency key of the current step: instance, node and the step's sequence number
    /// (a node visited twice in a loop acts twice; a retry of one visit acts once).
    fn effect_key(&self) -> String {
        format!(
            "journey:{}:{}:{}",
            self.instance.id,
            self.instance.node,
            self.instance.step_count - 1
        )
    }
}

/// Runs `run` from where it is until it waits or ends.
pub(crate) async fn advance(
    service: &Service,
    definition: &JourneyDefinition,
    run: &mut Run,
    now: i64,
) -> Result<(), Error> {
    let mut runner = Runner {
        service,
        definition,
        now,
    };
    while run.instance.is_active() {
        if run.executed >= MAX_NODES_PER_RUN {
            // Give other instances their turn; continue at once in a later round.
            run.instance.wake_us = Some(now);
            break;
        }
        let Some(node) = definition::node(definition, &run.instance.node) else {
            run.end(state::FAILED, "node_missing", now);
            break;
        };
        run.executed += 1;
        match runner.execute(run, node).await? {
            Flow::Continue => continue,
            Flow::Stop => break,
        }
    }
    run.instance.update_us = now;
    Ok(())
}

struct Runner<'a> {
    service: &'a Service,
    definition: &'a JourneyDefinition,
    now: i64,
}

impl Runner<'_> {
    async fn execute(&mut self, run: &mut Run, node: &Node) -> Result<Flow, Error> {
        let now = self.now;
        let woken = run.instance.state == state::WAITING;
        match &node.kind {
            None => {
                run.end(state::FAILED, "node_missing", now);
                Ok(Flow::Stop)
            }
            Some(Kind::Exit(exit)) => {
                let reason = if exit.reason.is_empty() {
                    "completed"
                } else {
                    exit.reason.as_str()
                };
                run.leave("exit", "", now);
                run.end(state::EXITED, reason, now);
                Ok(Flow::Stop)
            }
            Some(Kind::Wait(wait)) => {
                if woken {
                    run.follow(&node.next, "elapsed", "", now);
                    return Ok(Flow::Continue);
                }
                let until = match &wait.until {
                    Some(Until::Duration(duration)) => {
                        now.saturating_add(duration_us(duration).unwrap_or(0))
                    }
                    Some(Until::LocalWindow(window)) => {
                        let zone = self.zone(run).await?;
                        throughline_runtime::local_time::next_inside(window, zone, super::utc(now))
                            .map_or(now, |at| at.timestamp_micros())
                    }
                    None => now,
                };
                if until <= now {
                    run.follow(&node.next, "elapsed", "", now);
                    Ok(Flow::Continue)
                } else {
                    run.wait(until);
                    Ok(Flow::Stop)
                }
            }
            Some(Kind::WaitForEvent(wait)) => {
                if woken {
                    run.follow(&wait.timeout_next, "timeout", "", now);
                    return Ok(Flow::Continue);
                }
                let timeout = wait.timeout.as_ref().and_then(duration_us).unwrap_or(0);
                run.wait(now.saturating_add(timeout));
                Ok(Flow::Stop)
            }
            Some(Kind::Branch(branch)) => {
                let scope = self.scope(run).await?;
                for (index, case) in branch.cases.iter().enumerate() {
                    if condition(&case.condition, ExprKind::Condition, &scope) {
                        let name = if case.name.is_empty() {
                            index.to_string()
                        } else {
                            case.name.clone()
                        };
                        run.follow(&case.next, &format!("case:{name}"), "", now);
                        return Ok(Flow::Continue);
                    }
                }
                run.follow(&branch.default_next, "case:default", "", now);
                Ok(Flow::Continue)
            }
            Some(Kind::AbSplit(split)) => {
                let total: u64 = split
                    .arms
                    .iter()
                    .map(|arm| u64::try_from(arm.weight.max(1)).unwrap_or(1))
                    .sum();
                // Deterministic: a retry of this step takes the same arm.
                let mut point = super::hash(&[&run.instance.id, &node.id]) % total.max(1);
                let arm = split
                    .arms
                    .iter()
                    .find(|arm| {
                        let weight = u64::try_from(arm.weight.max(1)).unwrap_or(1);
                        if point < weight {
                            true
                        } else {
                            point -= weight;
                            false
                        }
                    })
                    .or(split.arms.last());
                let Some(arm) = arm else {
                    run.end(state::FAILED, "node_missing", now);
                    return Ok(Flow::Stop);
                };
                run.instance
                    .split_arms
                    .insert(node.id.clone(), arm.name.clone());
                run.follow(&arm.next, &format!("arm:{}", arm.name), "", now);
                Ok(Flow::Continue)
            }
            Some(Kind::Send(send)) => {
                if let Some(flow) = self.contact_policies(run, node, send.purpose).await? {
                    return Ok(flow);
                }
                let scope = self.scope(run).await?;
                let variables: serde_json::Map<String, serde_json::Value> = send
                    .variables
                    .iter()
                    .map(|(name, source)| (name.clone(), value(source, &scope)))
                    .collect();
                let variables =
                    throughline_runtime::json::json_to_struct(serde_json::Value::Object(variables));
                let key = run.effect_key();
                let effect =
                    effects::send(self.service, &run.instance, send, variables, &key).await;
                Ok(self.settle(run, node, effect, ""))
            }
            Some(Kind::RequestFeedback(request)) => {
                let purpose = throughline_proto::common::v1::Purpose::Survey as i32;
                if let Some(flow) = self.contact_policies(run, node, purpose).await? {
                    return Ok(flow);
                }
                let key = run.effect_key();
                let effect =
                    effects::request_feedback(self.service, &run.instance, &node.id, request, &key)
                        .await;
                Ok(self.settle(run, node, effect, ""))
            }
            Some(Kind::UpdateProfile(update)) => {
                let scope = self.scope(run).await?;
                let attributes = update
                    .attributes
                    .iter()
                    .map(|(key, source)| (key.clone(), value(source, &scope)))
                    .collect();
                let effect = effects::update_profile(self.service, &run.instance, attributes).await;
                Ok(self.settle(run, node, effect, ""))
            }
            Some(Kind::Webhook(webhook)) => {
                let scope = self.scope(run).await?;
                let key = run.effect_key();
                let effect =
                    super::webhook_call::call(self.service, &run.instance, webhook, &scope, &key)
                        .await;
                Ok(self.settle(run, node, effect, &webhook.result_variable))
            }
        }
    }

    /// Applies the journey's policies before a message: `Some` when the node does not send now
    /// (it waits, was skipped, or the instance ended).
    async fn contact_policies(
        &mut self,
        run: &mut Run,
        node: &Node,
        purpose: i32,
    ) -> Result<Option<Flow>, Error> {
        let now = self.now;
        if run.instance.holdout {
            // The control group is measured, never contacted.
            run.follow(&node.next, "skipped:holdout", "", now);
            return Ok(Some(Flow::Continue));
        }
        let profile = self.profile(run).await?.clone();
        let decision = policies::check(
            self.service,
            self.definition,
            &run.instance,
            profile.as_ref(),
            purpose,
            run.contacts.len(),
            now,
        )
        .await?;
        Ok(match decision {
            policies::Decision::Proceed => None,
            policies::Decision::WaitUntil(until) => {
                run.wait(until);
                Some(Flow::Stop)
            }
            policies::Decision::Skip(outcome) => {
                run.follow(&node.next, &outcome, "", now);
                Some(Flow::Continue)
            }
            policies::Decision::Exit(reason) => {
                run.leave(&format!("suppressed:{reason}"), "", now);
                run.end(state::EXITED, &reason, now);
                Some(Flow::Stop)
            }
        })
    }

    /// Records a side effect's result and moves on, retries later, or fails.
    fn settle(
        &mut self,
        run: &mut Run,
        node: &Node,
        effect: Effect,
        result_variable: &str,
    ) -> Flow {
        let now = self.now;
        match effect {
            Effect::Done {
                outcome,
                effect,
                contacted,
                result,
            } => {
                if contacted {
                    run.contacts.push(run.instance.step_count - 1);
                }
                if let (Some(result), false) = (result, result_variable.is_empty()) {
                    run.instance
                        .variables
                        .insert(result_variable.to_owned(), result);
                }
                run.instance.attempt += 1;
                run.follow(&node.next, &outcome, &effect, now);
                Flow::Continue
            }
            Effect::Retry(detail) => {
                run.instance.attempt += 1;
                let max = max_attempts(node);
                if run.instance.attempt >= max {
                    return self.fail(run, node, &format!("failed:{}", short(&detail)));
                }
                let attempts = run.instance.attempt;
                run.current().attempts = attempts;
                let delay = throughline_runtime::backoff::backoff(
                    std::time::Duration::from_secs(1),
                    std::time::Duration::from_secs(600),
                    attempts,
                );
                let delay = i64::try_from(delay.as_micros()).unwrap_or(i64::MAX / 4);
                run.wait(now.saturating_add(delay));
                Flow::Stop
            }
            Effect::Failed(detail) => {
                run.instance.attempt += 1;
                self.fail(run, node, &format!("failed:{}", short(&detail)))
            }
        }
    }

    /// A step that cannot succeed: a webhook follows its `failure_next` or ends with
    /// `webhook_failed`; any other node fails the instance.
    fn fail(&mut self, run: &mut Run, node: &Node, outcome: &str) -> Flow {
        let now = self.now;
        if let Some(Kind::Webhook(webhook)) = &node.kind {
            if webhook.failure_next.is_empty() {
                run.leave(outcome, "", now);
                run.end(state::EXITED, "webhook_failed", now);
                return Flow::Stop;
            }
            run.follow(&webhook.failure_next, outcome, "", now);
            return Flow::Continue;
        }
        run.leave(outcome, "", now);
        run.end(state::FAILED, "failed", now);
        Flow::Stop
    }

    /// The customer's profile, read once per run.
    async fn profile<'r>(&mut self, run: &'r mut Run) -> Result<&'r Option<Profile>, Error> {
        if run.profile.is_none() {
            run.profile = Some(effects::profile(self.service, &run.instance).await?);
        }
        Ok(run.profile.get_or_insert(None))
    }

    /// The customer's time zone; UTC when unknown.
    async fn zone(&mut self, run: &mut Run) -> Result<Tz, Error> {
        Ok(zone_of(self.profile(run).await?.as_ref()))
    }

    async fn scope(&mut self, run: &mut Run) -> Result<Scope, Error> {
        let profile = self
            .profile(run)
            .await?
            .as_ref()
            .map(expr::profile_value)
            .unwrap_or_else(|| serde_json::json!({}));
        Ok(Scope {
            profile,
            trigger: run.instance.trigger.clone(),
            vars: serde_json::Value::Object(run.instance.variables.clone()),
            now_us: self.now,
            event: None,
            interactions: None,
        })
    }
}

/// The customer's time zone from their preferences; UTC when unset or unknown.
pub(crate) fn zone_of(profile: Option<&Profile>) -> Tz {
    profile
        .and_then(|p| p.preferences.as_ref())
        .and_then(|p| p.time_zone.parse().ok())
        .unwrap_or(Tz::UTC)
}

fn max_attempts(node: &Node) -> i32 {
    match &node.kind {
        Some(Kind::Webhook(webhook)) if webhook.max_attempts > 0 => webhook.max_attempts,
        Some(Kind::Webhook(_)) => 5,
        _ => MAX_ATTEMPTS,
    }
}

/// Keeps outcome details short; they end up in statistics keys.
fn short(detail: &str) -> String {
    detail.chars().take(80).collect()
}

/// Whether a condition holds; one that cannot be evaluated (a missing attribute, say) does not.
pub(crate) fn condition(source: &str, kind: ExprKind, scope: &Scope) -> bool {
    source.trim().is_empty()
        || expr::compile(source, kind)
            .and_then(|expression| expression.is_true(scope))
            .unwrap_or(false)
}

/// A value expression's result; null when it cannot be evaluated.
fn value(source: &str, scope: &Scope) -> serde_json::Value {
    expr::compile(source, ExprKind::Value)
        .and_then(|expression| expression.value(scope))
        .unwrap_or(serde_json::Value::Null)
}
