// Generates the lnrpc client, and with the `sim` feature the server (the LND
// simulator), from the subset of lnd's lightning.proto kept in proto/. protox parses the
// proto in Rust, so building needs no system protoc.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/lnrpc/lightning.proto");
    let fds = protox::compile(["lnrpc/lightning.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(std::env::var_os("CARGO_FEATURE_SIM").is_some())
        .compile_fds(fds)?;
    Ok(())
}
