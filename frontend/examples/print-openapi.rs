//! Prints the public OpenAPI spec; `make openapi` writes it to `openapi.yaml`.

fn main() {
    print!("{}", frontend::api::public_spec_yaml());
}
