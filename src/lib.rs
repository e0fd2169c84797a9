//! `edp`: ECCO Dataset Production as a library.
//!
//! The modules follow the pipeline of one granule:
//! jobs → [`tasks`] → read ([`mds`] + [`llc`] + [`grid`]) → [`regrid`] →
//! [`granule`] (a pure description) → [`ncio`] (the only netCDF/HDF5 code) →
//! [`storage`] (atomic placement, S3) → [`run`] (one runner, manifest, restart);
//! [`plot`] draws quick-looks of finished granules; [`references`] joins a collection's
//! granules into one virtual Zarr dataset.
//! [`metadata`] and [`time`] feed the task and granule layers; [`settings`] are parsed
//! once and passed down; [`synth`] makes realistic LLC inputs for the demo, the tests
//! and the benchmarks; [`cli`] is the command-line surface the `edp` binary exposes.

pub(crate) mod buffers;
pub mod cli;
pub mod error;
pub mod granule;
pub mod granule_name;
pub mod grid;
pub mod jobs;
pub mod llc;
pub mod mds;
pub mod metadata;
pub mod ncio;
pub mod oned;
pub mod plot;
pub mod references;
pub mod regrid;
pub mod run;
pub mod settings;
pub mod storage;
pub mod synth;
pub mod tasks;
pub mod time;
