//! Reading a baseline: a profile file (`batchinfer profile`) or the summary JSON
//! of any earlier run, both of which hold a `profile` object; a local file or an
//! object (`s3://…`), as `--summary-json` writes either.

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::Profile;

/// The profile in a summary or profile file.
pub fn read(path: &Path) -> Result<Profile> {
    let location = path.to_str().map(crate::storage::Location::parse);
    let text = match location {
        Some(Ok(crate::storage::Location::Object(url))) => {
            crate::storage::read::read_all(&url).map(|b| b.to_vec())
        }
        Some(Ok(crate::storage::Location::Local(local))) => Ok(std::fs::read(local)?),
        _ => Ok(std::fs::read(path)?),
    }
    .with_context(|| format!("cannot read baseline {}", path.display()))?;
    let value: serde_json::Value = serde_json::from_slice(&text)
        .with_context(|| format!("baseline {} is not JSON", path.display()))?;
    let Some(profile) = value.get("profile").filter(|p| !p.is_null()) else {
        bail!(
            "baseline {} has no profile: make one with `batchinfer profile`, or pass the --summary-json of an earlier run",
            path.display()
        );
    };
    serde_json::from_value(profile.clone()).with_context(|| {
        format!(
            "baseline {}: its profile is not one this version reads; make it again with `batchinfer profile`",
            path.display()
        )
    })
}
