//! `linkwright report`: the attribution report of `GET /api/v1/reports`.

use std::process::ExitCode;

use anyhow::Result;
use linkwright_core::reports::{Format, ReportQuery};

use crate::{ConfigArg, DataDirArg, open_store};

pub(crate) fn report(
    config: &ConfigArg,
    data: &DataDirArg,
    from: &str,
    to: &str,
    group_by: &str,
    format: &str,
) -> Result<ExitCode> {
    let query = ReportQuery::parse(Some(from), Some(to), Some(group_by))
        .map_err(|e| anyhow::anyhow!("--{}: {e}", e.field.replace('_', "-")))?;
    let format: Format = format
        .parse()
        .map_err(|e| anyhow::anyhow!("--format: {e}"))?;
    let (_, store) = open_store(config, data)?;
    let report = store.report(&query)?;
    print!("{}", report.render(format)?);
    Ok(ExitCode::SUCCESS)
}
