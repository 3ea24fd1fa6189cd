//! Compiles the contracts with protox (no system protoc), generates the tonic
//! clients and servers, and derives two tables from custom options:
//! the scope every RPC requires (`required_scope`) and the payload of every event
//! type (`event_types`). A Throughline RPC without a scope fails the build, so a
//! method can never be added without deciding who may call it.

use std::collections::BTreeMap;
use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::{env, fs};

use prost_reflect::{DescriptorPool, DynamicMessage, ExtensionDescriptor, Value};
use prost_types::FileDescriptorSet;

const OWN_PACKAGE_PREFIX: &str = "throughline.";
const SCOPE_OPTION: &str = "throughline.common.v1.required_scope";
const EVENT_TYPES_OPTION: &str = "throughline.event.v1.event_types";
const EVENT_PACKAGE: &str = "throughline.event.v1";

/// The vendored Google packages, generated once into `crate::google` and referred
/// to from Throughline's code by these paths (prost escapes `type` itself).
const GOOGLE_PACKAGES: [(&str, &str); 2] = [
    (".google.api", "crate::google::api"),
    (".google.type", "crate::google::type"),
];

type BuildResult<T> = Result<T, Box<dyn Error>>;

fn main() {
    if let Err(error) = run() {
        // `cargo::error` shows each line as an error in Cargo's own output
        // rather than buried in the script's stderr.
        for line in error.to_string().lines() {
            println!("cargo::error={line}");
        }
        std::process::exit(1);
    }
}

fn run() -> BuildResult<()> {
    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let contracts_dir = crate_dir.join("throughline");
    let third_party_dir = crate_dir.join("third_party");

    // Cargo scans a directory given here recursively, so new files count too.
    println!("cargo:rerun-if-changed={}", contracts_dir.display());
    println!("cargo:rerun-if-changed={}", third_party_dir.display());

    let mut files = Vec::new();
    collect_protos(&contracts_dir, &mut files)?;
    files.sort();
    // Import-style names (`throughline/common/v1/auth.proto`) keep the descriptor
    // set free of this machine's paths.
    let files: Vec<PathBuf> = files
        .iter()
        .map(|file| file.strip_prefix(&crate_dir).map(Path::to_path_buf))
        .collect::<Result<_, _>>()?;

    let mut compiler = protox::Compiler::new([&crate_dir, &third_party_dir])?;
    compiler.include_source_info(true).include_imports(true);
    compiler.open_files(&files)?;

    let pool = compiler.descriptor_pool();
    let scopes = method_scopes(&pool)?;
    let event_types = event_payloads(&pool)?;

    fs::write(
        out_dir.join("throughline_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;
    fs::write(
        out_dir.join("method_scopes.rs"),
        render_table(
            "METHOD_SCOPES",
            "Every RPC's full path (`/package.Service/Method`) and the scope it requires, sorted by path.",
            &scopes,
        ),
    )?;
    fs::write(
        out_dir.join("event_types.rs"),
        render_table(
            "EVENT_TYPES",
            "Every event type (`Event.type`) and the full name of its payload message, sorted by type.",
            &event_types,
        ),
    )?;

    let fds = compiler.file_descriptor_set();
    let (own, others): (Vec<_>, Vec<_>) = fds
        .file
        .into_iter()
        .partition(|file| file.package().starts_with(OWN_PACKAGE_PREFIX));

    // Google's files first, on their own: their comments are left out because the
    // code samples in them would run as doctests. Well-known types map to
    // prost-types and generate nothing.
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(false)
        .disable_comments(["."])
        .compile_fds(FileDescriptorSet {
            file: others.clone(),
        })?;

    // Throughline's files, with the Google files present so that types resolve,
    // mapped to the modules generated above. Default stubs make every server
    // method answer UNIMPLEMENTED until a service overrides it.
    // BTreeMap for every map field: the encoding is then deterministic, which
    // idempotency relies on (a retried request must hash the same).
    let mut builder = tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .btree_map(".")
        .codec_path("crate::codec::Codec")
        .generate_default_stubs(true);
    for (proto_path, rust_path) in GOOGLE_PACKAGES {
        builder = builder.extern_path(proto_path, rust_path);
    }
    builder.compile_fds(FileDescriptorSet {
        file: others.into_iter().chain(own).collect(),
    })?;

    Ok(())
}

fn collect_protos(dir: &Path, files: &mut Vec<PathBuf>) -> BuildResult<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, files)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            files.push(path);
        }
    }
    Ok(())
}

/// Reads `required_scope` from every method of every Throughline service.
fn method_scopes(pool: &DescriptorPool) -> BuildResult<BTreeMap<String, String>> {
    let extension = extension(pool, SCOPE_OPTION)?;
    let mut scopes = BTreeMap::new();
    let mut problems = Vec::new();
    for service in pool.services() {
        if !service.package_name().starts_with(OWN_PACKAGE_PREFIX) {
            continue;
        }
        for method in service.methods() {
            let path = format!("/{}/{}", service.full_name(), method.name());
            match string_option(&method.options(), &extension) {
                Some(scope) if is_scope(&scope) => {
                    scopes.insert(path, scope);
                }
                Some(scope) => problems.push(format!(
                    "{}: scope {scope:?} is not of the form `<area>:<verb>`",
                    method.full_name()
                )),
                None => problems.push(format!(
                    "{}: no `option ({SCOPE_OPTION}) = \"<area>:<verb>\";`",
                    method.full_name()
                )),
            }
        }
    }
    if !problems.is_empty() {
        return Err(format!(
            "every Throughline RPC must declare the scope a caller needs:\n  {}",
            problems.join("\n  ")
        )
        .into());
    }
    Ok(scopes)
}

/// Reads `event_types` from every message of the event package.
fn event_payloads(pool: &DescriptorPool) -> BuildResult<BTreeMap<String, String>> {
    let extension = extension(pool, EVENT_TYPES_OPTION)?;
    let mut payloads = BTreeMap::new();
    for message in pool.all_messages() {
        if message.package_name() != EVENT_PACKAGE {
            continue;
        }
        let options = message.options();
        if !options.has_extension(&extension) {
            continue;
        }
        let Value::List(types) = options.get_extension(&extension).into_owned() else {
            return Err(format!("{}: `event_types` is not a list", message.full_name()).into());
        };
        for event_type in types {
            let Value::String(event_type) = event_type else {
                return Err(
                    format!("{}: an event type is not a string", message.full_name()).into(),
                );
            };
            if let Some(previous) =
                payloads.insert(event_type.clone(), message.full_name().to_owned())
            {
                return Err(format!(
                    "event type {event_type:?} is declared by both {previous} and {}",
                    message.full_name()
                )
                .into());
            }
        }
    }
    Ok(payloads)
}

fn extension(pool: &DescriptorPool, name: &str) -> BuildResult<ExtensionDescriptor> {
    pool.get_extension_by_name(name)
        .ok_or_else(|| format!("the option {name} is not defined").into())
}

fn string_option(options: &DynamicMessage, extension: &ExtensionDescriptor) -> Option<String> {
    if !options.has_extension(extension) {
        return None;
    }
    match options.get_extension(extension).as_ref() {
        Value::String(value) => Some(value.clone()),
        _ => None,
    }
}

/// `<area>:<verb>`, both lower-case ASCII words.
fn is_scope(scope: &str) -> bool {
    let word = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase());
    matches!(scope.split_once(':'), Some((area, verb)) if word(area) && word(verb))
}

fn render_table(name: &str, doc: &str, rows: &BTreeMap<String, String>) -> String {
    let mut out =
        String::from("// @generated by the build script from the contracts' custom options.\n");
    let _ = writeln!(out, "/// {doc}");
    let _ = writeln!(out, "pub static {name}: &[(&str, &str)] = &[");
    for (key, value) in rows {
        let _ = writeln!(out, "    ({key:?}, {value:?}),");
    }
    out.push_str("];\n");
    out
}
