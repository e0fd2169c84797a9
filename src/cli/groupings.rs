//! `edp groupings`: the ids, names and frequencies a jobs file can name, so that an id
//! is looked up rather than guessed (the same id is another grouping in each product).

use std::path::PathBuf;

use clap::Args;

use super::{EXIT_OK, EXIT_USAGE};
use crate::metadata::{MetadataSet, Product};
use crate::storage::Storage;

#[derive(Args, Debug)]
pub struct GroupingsArgs {
    /// Only this product's groupings: `native` or `latlon` (default: both).
    #[arg(long, value_name = "native|latlon")]
    product: Option<String>,
    /// ECCO metadata directory (default: the embedded V4r4 set); local or s3://.
    #[arg(long)]
    metadata: Option<PathBuf>,
}

pub fn run(a: &GroupingsArgs, storage: &Storage) -> anyhow::Result<u8> {
    let products = match a.product.as_deref() {
        None => vec![Product::Native, Product::Latlon],
        Some(p) => match Product::parse(p) {
            Some(p) => vec![p],
            None => {
                eprintln!("edp: error: --product {p}: expected native or latlon");
                return Ok(EXIT_USAGE);
            }
        },
    };
    let m = match &a.metadata {
        Some(d) => MetadataSet::from_dir(&storage.local_dir(&d.to_string_lossy())?)?,
        None => MetadataSet::embedded()?,
    };
    println!(
        "{:<7} {:>3}  {:<40} {:<3} {:<20} name",
        "product", "id", "grouping (also a job's name)", "dim", "frequencies"
    );
    for product in products {
        for g in listing(&m, product) {
            let freqs: Vec<&str> = g.frequencies.iter().map(|f| f.job_name()).collect();
            println!(
                "{:<7} {:>3}  {:<40} {:<3} {:<20} {}",
                product.name(),
                g.index,
                g.filename,
                g.dimension,
                freqs.join(","),
                g.name
            );
        }
    }
    println!(
        "a job names a grouping by id or name: [<id>|'<grouping>', 'native'|'latlon', <frequency>, 'all'|[steps]]"
    );
    Ok(EXIT_OK)
}

/// A product's groupings by id: the groupings file's, then the derived time-invariant
/// ones numbered after them.
fn listing(m: &MetadataSet, product: Product) -> Vec<&crate::metadata::Grouping> {
    let n = m.groupings(product).len();
    (0..n + 16).filter_map(|i| m.grouping(product, i)).collect()
}
