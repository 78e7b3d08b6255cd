use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let options = nucleus_whoami::Options::parse();
    match nucleus_whoami::run(options).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("nucleus-whoami: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
