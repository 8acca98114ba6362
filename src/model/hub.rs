//! Hugging Face Hub ids (`org/name[@revision]`): the local cache first, a
//! download only when the cache lacks files and the Hub can be reached.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// A Hub id, parsed from `org/name`, `org/name@rev` or a recorded
/// `hf:org/name@commit`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubId {
    /// `org/name`.
    pub repo: String,
    /// A branch, tag or commit (`main` when none is given).
    pub revision: String,
}

impl HubId {
    /// The id in `spec`, or `None` when it is not one (a local path, say).
    pub fn parse(spec: &str) -> Option<HubId> {
        let s = spec.strip_prefix("hf:").unwrap_or(spec);
        let (repo, rev) = match s.split_once('@') {
            Some((r, v)) => (r, v),
            None => (s, "main"),
        };
        let ok = |p: &str| {
            !p.is_empty()
                && !p.starts_with('.')
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        let (org, name) = repo.split_once('/')?;
        (ok(org) && ok(name) && ok(rev)).then(|| HubId {
            repo: repo.to_string(),
            revision: rev.to_string(),
        })
    }
}

const FILES: [&str; 2] = ["config.json", "tokenizer.json"];

fn is_commit(s: &str) -> bool {
    s.len() == 40 && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// The cache root: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
/// `~/.cache/huggingface/hub` (what `huggingface_hub` uses).
pub fn cache_dir() -> PathBuf {
    hf_hub::Cache::from_env().path().clone()
}

/// The snapshot directory of `id` in the cache, with its commit, if every
/// file the model needs is there.
fn cached(cache: &Path, id: &HubId) -> Option<(PathBuf, String)> {
    let base = cache.join(format!("models--{}", id.repo.replace('/', "--")));
    let commit = if is_commit(&id.revision) {
        id.revision.clone()
    } else {
        std::fs::read_to_string(base.join("refs").join(&id.revision))
            .ok()?
            .trim()
            .to_string()
    };
    let dir = base.join("snapshots").join(&commit);
    let has_weights = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok())
        .any(|e| e.path().extension().is_some_and(|x| x == "safetensors"));
    (FILES.iter().all(|f| dir.join(f).is_file()) && has_weights).then_some((dir, commit))
}

/// Resolves `id` to a local directory and the commit it is at.
pub fn resolve(id: &HubId, cache: &Path) -> Result<(PathBuf, String)> {
    if let Some(found) = cached(cache, id) {
        return Ok(found);
    }
    let missing = || {
        format!(
            "{}@{} is not in the Hugging Face cache at {} (set HF_HOME or HF_HUB_CACHE to use \
             another); it needs config.json, tokenizer.json and *.safetensors",
            id.repo,
            id.revision,
            cache.display()
        )
    };
    if std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| v == "1") {
        return Err(Error::Model(format!("{} (HF_HUB_OFFLINE=1)", missing())));
    }
    download(id, cache)
        .map_err(|e| Error::Model(format!("{}; download failed: {e}", missing())))?;
    cached(cache, id).ok_or_else(|| Error::Model(missing()))
}

fn download(id: &HubId, cache: &Path) -> std::result::Result<(), String> {
    use hf_hub::{api::sync::ApiBuilder, Repo, RepoType};
    let api = ApiBuilder::from_cache(hf_hub::Cache::new(cache.to_path_buf()))
        .with_progress(false)
        .build()
        .map_err(|e| e.to_string())?;
    let repo = api.repo(Repo::with_revision(
        id.repo.clone(),
        RepoType::Model,
        id.revision.clone(),
    ));
    for f in FILES {
        repo.get(f).map_err(|e| first_line(&e.to_string()))?;
    }
    match repo.get("model.safetensors") {
        Ok(_) => Ok(()),
        Err(_) => {
            // Sharded checkpoints list their shards in an index.
            let index = repo
                .get("model.safetensors.index.json")
                .map_err(|e| first_line(&e.to_string()))?;
            let text = std::fs::read_to_string(index).map_err(|e| e.to_string())?;
            let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
            let mut shards: Vec<String> = v["weight_map"]
                .as_object()
                .map(|m| {
                    m.values()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            shards.sort();
            shards.dedup();
            for s in shards {
                repo.get(&s).map_err(|e| first_line(&e.to_string()))?;
            }
            Ok(())
        }
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ids() {
        assert_eq!(
            HubId::parse("HuggingFaceTB/SmolLM2-135M@v1.0"),
            Some(HubId {
                repo: "HuggingFaceTB/SmolLM2-135M".into(),
                revision: "v1.0".into()
            })
        );
        assert_eq!(HubId::parse("hf:a/b").unwrap().revision, "main");
        for bad in ["a", "a/b/c", "../x", "a/", "/abs/path", "a/b@", "a b/c"] {
            assert_eq!(HubId::parse(bad), None, "{bad}");
        }
    }
}
