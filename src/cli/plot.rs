//! `edp plot GRANULE.nc -o FILE.png`: a quick-look image of one field of a granule.

use std::path::PathBuf;

use clap::Args;

use super::{EXIT_OK, EXIT_USAGE};
use crate::plot::{self, PlotOptions};

#[derive(Args, Debug)]
pub struct PlotArgs {
    /// The granule (native or lat-lon NetCDF).
    granule: PathBuf,
    /// Data variable (default: the first on a horizontal grid).
    #[arg(long)]
    var: Option<String>,
    /// Vertical level index of a 3D field.
    #[arg(long, default_value_t = 0)]
    level: usize,
    /// Time index.
    #[arg(long, default_value_t = 0)]
    time: usize,
    /// Output PNG (default: the granule's name with .png).
    #[arg(short, long)]
    output: Option<PathBuf>,
}

/// Exit 0 when written; 2 when the granule cannot be drawn or the image written.
pub fn run(a: &PlotArgs) -> anyhow::Result<u8> {
    let out = a
        .output
        .clone()
        .unwrap_or_else(|| a.granule.with_extension("png"));
    let opts = PlotOptions {
        var: a.var.clone(),
        level: a.level,
        time: a.time,
    };
    match plot::quicklook(&a.granule, &opts).and_then(|img| {
        img.write_png(&out)?;
        Ok(img)
    }) {
        Ok(img) => {
            println!("wrote {} ({}x{})", out.display(), img.width, img.height);
            Ok(EXIT_OK)
        }
        Err(e) => {
            eprintln!("edp: error: {}", crate::error::chain(&e));
            Ok(EXIT_USAGE)
        }
    }
}
