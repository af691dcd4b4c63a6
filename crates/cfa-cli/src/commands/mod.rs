//! One module per command family; `run` dispatches.

pub(crate) mod backup;
pub(crate) mod controller;
pub(crate) mod demo;
pub(crate) mod drift;
pub(crate) mod dry_run;
pub(crate) mod monitor;
pub(crate) mod ops;
pub(crate) mod pb;
pub(crate) mod plans;
pub(crate) mod serve;
pub(crate) mod stacks;
pub(crate) mod templates;
pub(crate) mod tenant;

use cfa_engine::Completion;

use crate::args::{Cli, Command};
use crate::platform;
use stacks::block_on_platform;

pub(crate) fn run(cli: Cli) -> anyhow::Result<()> {
    let mut global = cli.global;
    match cli.command {
        Command::Templates(command) => templates::run(&global, command),
        Command::Plans => plans::run(&global),
        Command::Pb(command) => pb::run(&global, command),
        Command::Tenant(command) => block_on_platform(&mut global, |global, platform| async move {
            tenant::run(&global, &platform, command).await
        }),
        Command::Provision(args) => block_on_platform(&mut global, |global, platform| async move {
            stacks::provision(&global, &platform, args).await
        }),
        Command::Suspend(args) => block_on_platform(&mut global, |global, platform| async move {
            let operation = stacks::PowerOperation::Suspend;
            stacks::suspend_or_resume(&global, &platform, operation, args, Completion::Ready).await
        }),
        Command::Resume(args) => block_on_platform(&mut global, |global, platform| async move {
            let completion = args.wait.completion();
            let operation = stacks::PowerOperation::Resume;
            stacks::suspend_or_resume(&global, &platform, operation, args.operation, completion)
                .await
        }),
        Command::Upgrade(args) => block_on_platform(&mut global, |global, platform| async move {
            stacks::upgrade(&global, &platform, args).await
        }),
        Command::Delete(args) => block_on_platform(&mut global, |global, platform| async move {
            stacks::delete(&global, &platform, args).await
        }),
        Command::Status(args) => block_on_platform(&mut global, |global, platform| async move {
            stacks::status(&global, &platform, args).await
        }),
        Command::List(args) => block_on_platform(&mut global, |global, platform| async move {
            stacks::list(&global, &platform, args).await
        }),
        Command::Logs(args) => block_on_platform(&mut global, |global, platform| async move {
            stacks::logs(&global, &platform, args).await
        }),
        Command::Capacity => block_on_platform(&mut global, |global, platform| async move {
            ops::capacity(&global, &platform).await
        }),
        Command::Audit(args) => block_on_platform(&mut global, |global, platform| async move {
            ops::audit(&global, &platform, args).await
        }),
        Command::Doctor => {
            let config = platform::load_config(&mut global)?;
            platform::runtime()?.block_on(ops::doctor(&global, config))
        }
        Command::Monitor(args) => block_on_platform(&mut global, |global, platform| async move {
            monitor::monitor(&global, &platform, args).await
        }),
        Command::Alerts(command) => block_on_platform(&mut global, |global, platform| async move {
            monitor::alerts(&global, &platform, command).await
        }),
        Command::Backup(command) => block_on_platform(&mut global, |global, platform| async move {
            backup::backup(&global, &platform, command).await
        }),
        Command::Reconcile(args) => block_on_platform(&mut global, |global, platform| async move {
            controller::reconcile(&global, &platform, args).await
        }),
        Command::Controller(args) => {
            block_on_platform(&mut global, |global, platform| async move {
                controller::controller(&global, &platform, args).await
            })
        }
        Command::Drift(args) => block_on_platform(&mut global, |global, platform| async move {
            drift::drift(&global, &platform, args).await
        }),
        Command::Serve(args) => block_on_platform(&mut global, |global, platform| async move {
            serve::serve(&global, &platform, args).await
        }),
        Command::Demo(args) => demo::run(&global, args),
    }
}
