//! Compiles the benchmark's own echo contract with protox, so building needs no system protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/echo.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["proto"])?;
    tonic_prost_build::configure()
        // `Bytes` payloads are reference-counted, so each call clones a pointer rather than
        // copying the payload; the baseline should measure gRPC, not memcpy.
        .bytes(".")
        .compile_fds(fds)?;
    Ok(())
}
