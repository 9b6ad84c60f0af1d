//! Compiles proto/ once for every Rust crate of the workspace, with the protoc
//! shipped by protoc-bin-vendored, so no system protoc is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // SAFETY: build scripts are single-threaded; nothing else reads the environment concurrently.
    unsafe { std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?) };
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("interop_descriptor.bin"))
        .compile_protos(
            &[
                "proto/helloworld/helloworld.proto",
                "proto/grpc/testing/test.proto",
            ],
            &["proto"],
        )?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
