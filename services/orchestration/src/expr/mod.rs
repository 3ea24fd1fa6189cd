//! CEL expressions of journeys: conditions (branches, matchers, suppression rules) and values
//! (send variables, profile updates), over the variables `profile`, `trigger`, `vars`, `now`,
//! and, where they apply, `event` and `interactions`.
//!
//! The engine compiles on every step, so [`compile`] keeps programs in a bounded process-wide
//! cache. An evaluation error (a missing map key, a wrong type) is returned, never hidden: the
//! engine's call sites treat a condition that errs as false and a value that errs as null.

mod convert;
mod proto;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock, RwLock};

use cel::common::ast::Expr;
use cel::{Context, Env, ExecutionError, IdedExpr, Program, Value};

pub(crate) use proto::{event_value, pool as descriptor_pool, profile_value};

/// Longer sources are refused: journeys are data edited by people, not programs.
const MAX_SOURCE_BYTES: usize = 4096;

/// Compiled programs kept per kind; past this the cache starts over, which only costs a
/// recompile of the expressions in use.
const CACHE_LIMIT: usize = 10_000;

/// Names CEL itself resolves (type denotations): not variables of ours.
const TYPE_NAMES: &[&str] = &[
    "bool",
    "bytes",
    "double",
    "duration",
    "int",
    "list",
    "map",
    "null_type",
    "string",
    "timestamp",
    "type",
    "uint",
];

/// Which variables an expression may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// `profile`, `trigger`, `vars`, `now`; a bool.
    Condition,
    /// As a condition, plus `event`.
    EventCondition,
    /// As a condition, plus `interactions`.
    Suppression,
    /// `profile`, `trigger`, `vars`, `now`; any value.
    Value,
}

impl Kind {
    fn variables(self) -> &'static [&'static str] {
        match self {
            Kind::Condition | Kind::Value => &["profile", "trigger", "vars", "now"],
            Kind::EventCondition => &["profile", "trigger", "vars", "now", "event"],
            Kind::Suppression => &["profile", "trigger", "vars", "now", "interactions"],
        }
    }

    fn is_condition(self) -> bool {
        self != Kind::Value
    }

    fn index(self) -> usize {
        match self {
            Kind::Condition => 0,
            Kind::EventCondition => 1,
            Kind::Suppression => 2,
            Kind::Value => 3,
        }
    }
}

/// The variables of one evaluation, as JSON.
#[derive(Debug, Clone, Default)]
pub(crate) struct Scope {
    /// The customer's profile as an object; `{}` when unknown.
    pub profile: serde_json::Value,
    /// The trigger event (see [`event_value`]); `{}` for StartJourney without variables.
    pub trigger: serde_json::Value,
    /// The instance's variables, an object.
    pub vars: serde_json::Value,
    pub now_us: i64,
    pub event: Option<serde_json::Value>,
    pub interactions: Option<serde_json::Value>,
}

/// A compiled expression.
#[derive(Debug)]
pub(crate) struct Expression {
    kind: Kind,
    program: Program,
    /// The variables the expression reads: only these are converted to CEL per evaluation.
    reads: Vec<&'static str>,
}

fn env() -> Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(Env::stdlib())).clone()
}

type Cache = RwLock<HashMap<String, Result<Arc<Expression>, String>>>;

/// One map per kind, so a lookup borrows the source instead of building a key.
fn cache(kind: Kind) -> &'static Cache {
    static CACHES: OnceLock<[Cache; 4]> = OnceLock::new();
    &CACHES.get_or_init(Default::default)[kind.index()]
}

/// Compiles `source` for `kind`, or says why it is not one (a description for a field
/// violation). Results, failures included, are cached by source and kind.
pub(crate) fn compile(source: &str, kind: Kind) -> Result<Arc<Expression>, String> {
    let cache = cache(kind);
    if let Ok(map) = cache.read()
        && let Some(found) = map.get(source)
    {
        return found.clone();
    }
    let compiled = compile_uncached(source, kind).map(Arc::new);
    if let Ok(mut map) = cache.write() {
        if map.len() >= CACHE_LIMIT {
            map.clear();
        }
        map.insert(source.to_owned(), compiled.clone());
    }
    compiled
}

fn compile_uncached(source: &str, kind: Kind) -> Result<Expression, String> {
    let names = kind.variables().join("`, `");
    if source.trim().is_empty() {
        return Err(format!(
            "required: a CEL expression over `{names}`{}",
            if kind.is_condition() {
                ", evaluating to a bool"
            } else {
                ""
            }
        ));
    }
    if source.len() > MAX_SOURCE_BYTES {
        return Err(format!("at most {MAX_SOURCE_BYTES} bytes"));
    }
    let program = env()
        .compile(source)
        .map_err(|e| format!("not a valid CEL expression: {}", one_line(&e.to_string())))?;
    let mut free = HashSet::new();
    free_variables(program.expression(), &mut Vec::new(), &mut free);
    let mut unknown: Vec<&str> = free
        .iter()
        .copied()
        .filter(|name| !kind.variables().contains(name) && !TYPE_NAMES.contains(name))
        .collect();
    unknown.sort_unstable();
    if let Some(name) = unknown.first() {
        return Err(format!(
            "unknown name `{name}`: this expression may read `{names}`"
        ));
    }
    let reads = kind
        .variables()
        .iter()
        .copied()
        .filter(|name| free.contains(name))
        .collect();
    let expression = Expression {
        kind,
        program,
        reads,
    };
    expression.trial()?;
    Ok(expression)
}

/// The identifiers `expr` reads that no comprehension (`exists`, `map`, ...) binds.
fn free_variables<'a>(expr: &'a IdedExpr, bound: &mut Vec<&'a str>, free: &mut HashSet<&'a str>) {
    match &expr.expr {
        Expr::Ident(name) => {
            // The parser's own accumulators start with `@`.
            if !name.starts_with('@') && !bound.contains(&name.as_str()) {
                free.insert(name);
            }
        }
        Expr::Call(call) => {
            if let Some(target) = &call.target {
                free_variables(target, bound, free);
            }
            for arg in &call.args {
                free_variables(arg, bound, free);
            }
        }
        Expr::Comprehension(comprehension) => {
            free_variables(&comprehension.iter_range, bound, free);
            free_variables(&comprehension.accu_init, bound, free);
            let depth = bound.len();
            bound.push(&comprehension.iter_var);
            if let Some(second) = &comprehension.iter_var2 {
                bound.push(second);
            }
            bound.push(&comprehension.accu_var);
            free_variables(&comprehension.loop_cond, bound, free);
            free_variables(&comprehension.loop_step, bound, free);
            free_variables(&comprehension.result, bound, free);
            bound.truncate(depth);
        }
        Expr::List(list) => {
            for element in &list.elements {
                free_variables(element, bound, free);
            }
        }
        Expr::Map(map) => {
            for entry in &map.entries {
                if let cel::common::ast::EntryExpr::MapEntry(entry) = &entry.expr {
                    free_variables(&entry.key, bound, free);
                    free_variables(&entry.value, bound, free);
                }
            }
        }
        Expr::Struct(structure) => {
            for entry in &structure.entries {
                if let cel::common::ast::EntryExpr::StructField(field) = &entry.expr {
                    free_variables(&field.value, bound, free);
                }
            }
        }
        Expr::Select(select) => free_variables(&select.operand, bound, free),
        Expr::Literal(_) | Expr::Unspecified => {}
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Expression {
    /// Whether the condition holds. A missing key or a wrong type is an error; the engine
    /// counts a condition that errs as false.
    pub(crate) fn is_true(&self, scope: &Scope) -> Result<bool, String> {
        match self.run(scope)? {
            Value::Bool(b) => Ok(b),
            other => Err(format!("evaluated to a {}, not a bool", other.type_of())),
        }
    }

    /// The expression's value as JSON (timestamps as RFC 3339 strings, durations as
    /// seconds such as `"90s"`).
    pub(crate) fn value(&self, scope: &Scope) -> Result<serde_json::Value, String> {
        convert::to_json(&self.run(scope)?)
    }

    fn run(&self, scope: &Scope) -> Result<Value, String> {
        let mut context = Context::with_env(env());
        for name in &self.reads {
            let value = match *name {
                "profile" => convert::to_cel(&scope.profile),
                "trigger" => convert::to_cel(&scope.trigger),
                "vars" => convert::to_cel(&scope.vars),
                "now" => convert::timestamp(scope.now_us),
                "event" => match &scope.event {
                    Some(event) => convert::to_cel(event),
                    None => continue,
                },
                "interactions" => match &scope.interactions {
                    Some(list) => convert::to_cel(list),
                    None => continue,
                },
                _ => continue,
            };
            context.add_variable_from_value(*name, value);
        }
        self.program
            .execute(&context)
            .map_err(|e| one_line(&e.to_string()))
    }

    /// Runs once on empty variables to catch what only shows when evaluated: a result that
    /// is not a bool, an unknown function, an operator on the wrong types. A missing key is
    /// expected on empty variables and proves nothing.
    fn trial(&self) -> Result<(), String> {
        let empty = || serde_json::Value::Object(Default::default());
        let scope = Scope {
            profile: empty(),
            trigger: empty(),
            vars: empty(),
            now_us: 0,
            event: Some(empty()),
            interactions: Some(serde_json::Value::Array(Vec::new())),
        };
        let mut context = Context::with_env(env());
        for name in &self.reads {
            let value = match *name {
                "now" => convert::timestamp(scope.now_us),
                "interactions" => Value::List(Arc::new(Vec::new())),
                _ => convert::to_cel(&empty()),
            };
            context.add_variable_from_value(*name, value);
        }
        match self.program.execute(&context) {
            Ok(Value::Bool(_)) => Ok(()),
            Ok(other) if self.kind.is_condition() => Err(format!(
                "must evaluate to a bool, not a {}",
                other.type_of()
            )),
            Ok(_) => Ok(()),
            Err(ExecutionError::UndeclaredReference(name)) => {
                Err(format!("unknown function or name `{name}`"))
            }
            Err(ExecutionError::NoSuchOverload(e)) => Err(format!(
                "calls a function or operator with arguments it does not take: {e}"
            )),
            Err(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
