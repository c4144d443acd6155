fn main() -> std::process::ExitCode {
    frontend::main_for(frontend::App::RestApi)
}
