//! `edp references DEST [-o OUT] [--url-prefix PREFIX]`: one kerchunk reference file per
//! collection found under DEST, local or on S3 (see [`crate::references`]).

use clap::Args;

use super::{EXIT_OK, EXIT_TASKS_FAILED, EXIT_USAGE};
use crate::references::{self, Source, Tree};
use crate::storage::Storage;

#[derive(Args, Debug)]
pub struct ReferencesArgs {
    /// Output root (the run's --dest), holding release/product/frequency/GROUPING: a
    /// local directory or s3://bucket/prefix.
    dest: String,
    /// Where the reference files go, a directory or s3://bucket/prefix (default:
    /// DEST/references).
    #[arg(short, long)]
    output: Option<String>,
    /// Name the granules PREFIX/<release/product/frequency/GROUPING/file> (where they
    /// will be published: an https:// or s3:// archive path) instead of their absolute
    /// file:// or s3:// location.
    #[arg(long, value_name = "PREFIX")]
    url_prefix: Option<String>,
}

/// Exit 0 when every collection has its file, 1 when some failed, 2 when DEST cannot
/// be listed or holds no granules.
pub fn run(a: &ReferencesArgs, storage: &Storage) -> anyhow::Result<u8> {
    Ok(write_for(
        storage,
        &a.dest,
        a.output.as_deref(),
        a.url_prefix.as_deref(),
    ))
}

/// Writes the references of every collection under `dest` into `out` (default
/// `dest/references`), reporting each; returns the exit code.
pub fn write_for(storage: &Storage, dest: &str, out: Option<&str>, url_prefix: Option<&str>) -> u8 {
    let trees = Tree::parse(dest).and_then(|tree| {
        let out = match out {
            Some(o) => Tree::parse(o)?,
            None => tree.join("references"),
        };
        Ok((tree, out))
    });
    let (tree, out) = match trees {
        Ok(t) => t,
        Err(e) => {
            eprintln!("edp: error: {}", crate::error::chain(&e));
            return EXIT_USAGE;
        }
    };
    let src = Source {
        tree,
        url_prefix: url_prefix.map(str::to_string),
        storage,
    };
    match references::write_all(&src, &out) {
        Err(e) => {
            eprintln!("edp: error: {}", crate::error::chain(&e));
            EXIT_USAGE
        }
        Ok(done) if done.is_empty() => {
            eprintln!(
                "edp: error: no granules under {dest} (expected release/product/frequency/GROUPING/*.nc)"
            );
            EXIT_USAGE
        }
        Ok(done) => {
            let mut failed = 0;
            for (c, r) in done {
                match r {
                    Ok(target) => println!(
                        "wrote {target} ({} granule(s) of {})",
                        c.granules.len(),
                        c.name
                    ),
                    Err(e) => {
                        failed += 1;
                        eprintln!("edp: error: {}: {}", c.name, crate::error::chain(&e));
                    }
                }
            }
            if failed > 0 {
                EXIT_TASKS_FAILED
            } else {
                EXIT_OK
            }
        }
    }
}
