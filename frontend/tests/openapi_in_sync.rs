//! `openapi.yaml` at the repo root is generated from the code; this fails when they differ.
//! Regenerate with `make openapi`.

#[test]
fn openapi_yaml_matches_the_code() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi.yaml");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = frontend::api::public_spec_yaml();
    assert!(
        committed == generated,
        "{} is out of date with the code: run `make openapi` and commit the result",
        path.display()
    );
}
