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
    /// Vertical level index of a 3D field (default 0; an error for a 2D field).
    #[arg(long)]
    level: Option<usize>,
    /// Time index (default 0; an error for a field without time).
    #[arg(long)]
    time: Option<usize>,
    /// Output PNG (default: the granule's file name with .png, in the current
    /// directory: the granule tree is left as it is).
    #[arg(short, long)]
    output: Option<PathBuf>,
}

/// Exit 0 when written; 2 when the granule cannot be drawn or the image written.
pub fn run(a: &PlotArgs) -> anyhow::Result<u8> {
    let out = match &a.output {
        Some(o) => o.clone(),
        None => match a.granule.file_name() {
            Some(name) => PathBuf::from(name).with_extension("png"),
            None => {
                eprintln!(
                    "edp: error: {} names no file; give the image's path with -o",
                    a.granule.display()
                );
                return Ok(EXIT_USAGE);
            }
        },
    };
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
