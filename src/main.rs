//! `turnpike`: a thin command line over the `turnpike` library.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use turnpike::config::{Config, LogFormat};
use turnpike::{App, Role};
use turnpike_store::clock::{Clock, SystemClock};

#[derive(Parser)]
#[command(name = "turnpike", version, about = "Metered API gateway, developer portal and usage billing")]
struct Cli {
    /// Configuration file (optional; TURNPIKE_* environment variables override it).
    #[arg(long, short, global = true, env = "TURNPIKE_CONFIG", default_value = "turnpike.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Portal, gateway and background workers in one process (default).
    Serve,
    /// Only the gateway.
    Gateway,
    /// Only the portal.
    Portal,
    /// Only the background workers.
    Worker,
    /// Apply database migrations and exit.
    Migrate,
    /// Administrative tasks.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an admin account; prints a generated password unless --password-stdin is given.
    CreateAdmin {
        /// The admin's email.
        #[arg(long)]
        email: String,
        /// Read the password from standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Create a personal access token for the JSON API of an existing account; prints the token
    /// (shown once; only its hash is stored).
    CreateToken {
        /// The account's email.
        #[arg(long)]
        email: String,
        /// A label for the token.
        #[arg(long, default_value = "cli")]
        name: String,
        /// Expire the token after this many days (default: never).
        #[arg(long)]
        expires_days: Option<u32>,
        /// What the token may do: `developer`, `admin:read`, `admin:write` (repeat the flag for
        /// several; admin scopes only for an admin account).
        #[arg(long = "scope", default_value = "developer")]
        scopes: Vec<String>,
    },
    /// Make the catalog (APIs, plans, current prices) match a declarative YAML file, in one
    /// transaction; prints one line per change (`no changes` when it already matches).
    Apply {
        /// The file (see docs/turnpike-config.schema.json and examples/turnpike.yaml).
        #[arg(long, short = 'f')]
        file: PathBuf,
        /// Print what would change and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also delete APIs and plans that are not in the file (never one with billing history).
        #[arg(long)]
        prune: bool,
        /// Record the changes in the audit log as this admin's (default: the system/CLI).
        #[arg(long = "as")]
        as_admin: Option<String>,
    },
    /// Write the catalog as a declarative file (stdout without -o), each OpenAPI document as
    /// `openapi/<slug>.json` beside it.
    Export {
        /// The file to write.
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
    },
    /// Compare the usage Turnpike invoiced with Stripe's invoices (read from Stripe now), line by
    /// line; prints each subscription and period that differs and exits 1 if any does.
    StripeDrift {
        /// How far back to look, in days.
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TURNPIKE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,hyper=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.compact().init(),
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("turnpike: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    init_logging(config.log_format);
    // One worker: a current-thread runtime, without the work-stealing machinery.
    let mut rt = match config.worker_threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let rt = match rt.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("turnpike: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli.command.unwrap_or(Command::Serve), config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("turnpike: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    let role = match command {
        Command::Serve => Role::Serve,
        Command::Gateway => Role::Gateway,
        Command::Portal => Role::Portal,
        Command::Worker => Role::Worker,
        Command::Migrate => {
            turnpike::open_store(&config).await?;
            println!("migrations applied");
            return Ok(());
        }
        Command::Admin { command } => return admin(command, &config).await,
    };
    let shutdown = turnpike::shutdown_signal();
    let app = App::build(config, role, Arc::new(SystemClock)).await?;
    let store = app.store.clone();
    if let Some(s) = &app.seeded {
        println!("First start: created admin {} with one-time password: {}", s.admin_email, s.admin_password);
        println!("(shown once; change it after logging in)");
    }
    if app.portal_addr.is_some() {
        println!("portal:  {}", app.portal_url);
    }
    if app.gateway_addr.is_some() {
        println!("gateway: {}", app.gateway_url);
    }
    println!("metrics: http://{}/metrics", app.metrics_addr);
    println!("ready");
    app.run_until_stopped(shutdown).await?;
    store.close().await;
    println!("stopped");
    Ok(())
}

/// `turnpike admin …`: one function per command.
async fn admin(command: AdminCommand, config: &Config) -> anyhow::Result<()> {
    match command {
        AdminCommand::CreateAdmin { email, password_stdin } => create_admin(config, &email, password_stdin).await,
        AdminCommand::CreateToken { email, name, expires_days, scopes } => create_token(config, &email, &name, expires_days, &scopes).await,
        AdminCommand::Apply { file, dry_run, prune, as_admin } => apply(config, &file, dry_run, prune, as_admin).await,
        AdminCommand::Export { output } => export(config, output).await,
        AdminCommand::StripeDrift { days } => stripe_drift(config, days).await,
    }
}

async fn create_admin(config: &Config, email: &str, password_stdin: bool) -> anyhow::Result<()> {
    let store = turnpike::open_store(config).await?;
    let password = if password_stdin {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        Some(s.trim_end_matches(['\r', '\n']).to_owned())
    } else {
        None
    };
    let seeded = turnpike::seed::create_admin(&store, email, password.as_deref(), SystemClock.now()).await?;
    println!("admin created: {}", seeded.admin_email);
    if !password_stdin {
        println!("one-time password (shown once): {}", seeded.admin_password);
    }
    Ok(())
}

async fn create_token(config: &Config, email: &str, name: &str, expires_days: Option<u32>, scopes: &[String]) -> anyhow::Result<()> {
    let scopes = turnpike_store::Scopes::parse(scopes.iter().map(String::as_str)).map_err(|e| anyhow::anyhow!("--scope: {e}"))?;
    let store = turnpike::open_store(config).await?;
    let email = turnpike_store::domain::Email::parse(email).map_err(|e| anyhow::anyhow!("--email: {e}"))?;
    let (account, _) = store.find_account_by_email(&email).await?.ok_or_else(|| anyhow::anyhow!("no account with that email"))?;
    let now = SystemClock.now();
    let expires_at = expires_days.map(|d| now + i64::from(d) * 86_400);
    let token = turnpike_store::PersonalToken::generate();
    match store.create_pat(account.id, name, &token, &scopes, expires_at, None, now).await {
        Ok(_) => println!("{}", token.expose()),
        Err(turnpike_store::StoreError::Unverified) => {
            anyhow::bail!("{email} has not confirmed its email address yet: no tokens until it does")
        }
        Err(turnpike_store::StoreError::AdminOnly) => anyhow::bail!("{email} is not an admin: admin scopes are for admins only"),
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

async fn apply(config: &Config, file: &std::path::Path, dry_run: bool, prune: bool, as_admin: Option<String>) -> anyhow::Result<()> {
    use turnpike_portal::service::config;
    let loaded = config::load(file)?;
    let store = turnpike::open_store(config).await?;
    let actor = match as_admin {
        None => None,
        Some(email) => {
            let email = turnpike_store::domain::Email::parse(&email).map_err(|e| anyhow::anyhow!("--as: {e}"))?;
            let (account, _) =
                store.find_account_by_email(&email).await?.ok_or_else(|| anyhow::anyhow!("--as: no account with that email"))?;
            if account.role != turnpike_store::Role::Admin {
                anyhow::bail!("--as: {email} is not an admin");
            }
            Some(turnpike_store::AccountId(account.id))
        }
    };
    let changes = config::plan(&store, &loaded, config::Options { prune, actor }).await?;
    print!("{}", changes.report());
    if dry_run {
        if !changes.is_empty() {
            println!("dry run: {} changes, nothing written", changes.ops.len());
        }
    } else if !changes.is_empty() {
        config::apply(&store, &changes, SystemClock.now()).await?;
        println!("applied {} changes", changes.ops.len());
    }
    Ok(())
}

async fn export(config: &Config, output: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    let store = turnpike::open_store(config).await?;
    let (yaml, docs) = turnpike_portal::service::config::export(&store).await?;
    let dir = output.as_deref().and_then(std::path::Path::parent).map(std::path::Path::to_path_buf).unwrap_or_default();
    for (rel, text) in &docs {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text)?;
    }
    match output {
        Some(path) => std::fs::write(path, yaml)?,
        None => print!("{yaml}"),
    }
    Ok(())
}

async fn stripe_drift(config: &Config, days: u32) -> anyhow::Result<()> {
    let store = turnpike::open_store(config).await?;
    // Reads only: no Checkout or portal return URL is needed.
    let stripe = turnpike::stripe_bridge(config, "")?
        .ok_or_else(|| anyhow::anyhow!("Stripe is not configured (stripe_secret_key and stripe_webhook_secret)"))?;
    let now = SystemClock.now();
    let report = turnpike_stripe::drift_against_stripe(&store, &stripe, now - i64::from(days) * 86_400, now + 1).await?;
    for d in &report.drift {
        println!("{}", turnpike_stripe::describe_drift(d));
    }
    println!("{} of {} invoices differ from Stripe", report.drift.len(), report.checked);
    if !report.drift.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}
