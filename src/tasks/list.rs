//! A task list held as it needs to be at release scale: an EDP-format list file
//! memory-mapped, with the byte span of each task, each parsed only when it is needed
//! (16 bytes of anonymous memory per task; the file's pages are mapped input, not
//! anonymous memory). Lists built in memory (from a jobs file, or read from S3) are
//! held as tasks.
//!
//! Also the streaming writer of EDP-format lists: byte for byte what
//! `serde_json::to_writer` with a 4-space pretty formatter writes for the whole array,
//! one task at a time.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::{Task, TaskError};

/// A task list, held in memory or mapped from its file.
pub enum TaskList {
    Owned(Vec<Task>),
    Mapped(MappedTasks),
}

/// An EDP-format task list file, mapped, with each task's byte span.
pub struct MappedTasks {
    path: PathBuf,
    map: Mmap,
    spans: Vec<(u64, u32)>,
    relocation: Relocation,
}

/// How a list's local locations are made absolute as its tasks are read: granules
/// against the current directory (as the absolute --dest is), and, for an EDP list
/// whose relative locations resolve only from its own directory, every relative
/// location against that directory.
#[derive(Debug, Clone, Default)]
pub struct Relocation {
    /// The list's directory, when its relative locations are taken against it.
    pub base: Option<PathBuf>,
    /// Granules made absolute against the current directory (a run's list).
    pub absolute_granules: bool,
}

impl Relocation {
    fn location(&self, s: &mut String) {
        if let Some(base) = &self.base {
            if !s.is_empty() && !is_s3(s) && Path::new(s.as_str()).is_relative() {
                *s = base.join(&*s).to_string_lossy().into_owned();
            }
        }
    }

    /// A granule's location, absolute.
    pub fn granule(&self, g: &str) -> String {
        let mut g = g.to_string();
        self.location(&mut g);
        if !self.absolute_granules || is_s3(&g) || g.is_empty() {
            return g;
        }
        std::path::absolute(&g)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or(g)
    }

    /// Applies the relocation to every location of `t`.
    pub fn apply(&self, t: &mut Task) {
        t.granule = self.granule(&t.granule);
        for l in [
            &mut t.ecco_grid_loc,
            &mut t.ecco_mapping_factors_loc,
            &mut t.ecco_metadata_loc,
            &mut t.ecco_cfg_loc,
        ]
        .into_iter()
        .flatten()
        {
            self.location(l);
        }
        for pair in t.variables.values_mut().flatten() {
            pair.iter_mut().for_each(|l| self.location(l));
        }
    }
}

fn is_s3(s: &str) -> bool {
    s.starts_with("s3://")
}

impl From<Vec<Task>> for TaskList {
    fn from(v: Vec<Task>) -> Self {
        TaskList::Owned(v)
    }
}

impl TaskList {
    /// Maps a task list file and finds its tasks (without parsing them).
    pub fn map(path: &Path) -> Result<TaskList, TaskError> {
        let io = |source| TaskError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        // SAFETY: the list is read-only input; a list changed while a run reads it is
        // a user error that shows as a task that does not parse.
        let map = unsafe { Mmap::map(&file) }.map_err(io)?;
        let spans = array_spans(&map).map_err(|what| TaskError::Json {
            path: path.to_path_buf(),
            // The parser's own account (line and column) when it has one.
            source: serde_json::from_slice::<Vec<serde::de::IgnoredAny>>(&map)
                .err()
                .unwrap_or_else(|| serde::de::Error::custom(what)),
        })?;
        Ok(TaskList::Mapped(MappedTasks {
            path: path.to_path_buf(),
            map,
            spans,
            relocation: Relocation::default(),
        }))
    }

    /// Relocates every task's locations (see [`Relocation`]): in place when held, as
    /// each task is read when mapped.
    pub fn relocate(&mut self, r: Relocation) {
        match self {
            TaskList::Owned(v) => v.iter_mut().for_each(|t| r.apply(t)),
            TaskList::Mapped(m) => m.relocation = r,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            TaskList::Owned(v) => v.len(),
            TaskList::Mapped(m) => m.spans.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Task `i` (parsed from the file when mapped).
    pub fn get(&self, i: usize) -> Result<std::borrow::Cow<'_, Task>, TaskError> {
        match self {
            TaskList::Owned(v) => {
                v.get(i)
                    .map(std::borrow::Cow::Borrowed)
                    .ok_or_else(|| TaskError::Json {
                        path: PathBuf::from("?"),
                        source: serde::de::Error::custom(format!("no task {i}")),
                    })
            }
            TaskList::Mapped(m) => m.get(i).map(std::borrow::Cow::Owned),
        }
    }

    /// Every task's granule, in order (from a mapped list, only that field is decoded).
    pub fn granules(&self) -> Result<Vec<String>, TaskError> {
        match self {
            TaskList::Owned(v) => Ok(v.iter().map(|t| t.granule.clone()).collect()),
            TaskList::Mapped(m) => {
                #[derive(serde::Deserialize)]
                struct Granule {
                    granule: String,
                }
                use rayon::prelude::*;
                m.spans
                    .par_iter()
                    .enumerate()
                    .map(|(i, &(off, len))| {
                        serde_json::from_slice::<Granule>(
                            &m.map[off as usize..off as usize + len as usize],
                        )
                        .map(|g| m.relocation.granule(&g.granule))
                        .map_err(|e| TaskError::Json {
                            path: m.path.clone(),
                            source: serde::de::Error::custom(format!("task {i}: {e}")),
                        })
                    })
                    .collect()
            }
        }
    }

    /// Every task in order (each parsed as it comes when mapped).
    pub fn iter(&self) -> impl Iterator<Item = Result<std::borrow::Cow<'_, Task>, TaskError>> {
        (0..self.len()).map(|i| self.get(i))
    }
}

impl MappedTasks {
    fn get(&self, i: usize) -> Result<Task, TaskError> {
        let err = |what: String| TaskError::Json {
            path: self.path.clone(),
            source: serde::de::Error::custom(what),
        };
        let &(off, len) = self
            .spans
            .get(i)
            .ok_or_else(|| err(format!("no task {i}")))?;
        let bytes = &self.map[off as usize..off as usize + len as usize];
        let mut t: Task =
            serde_json::from_slice(bytes).map_err(|e| err(format!("task {i}: {e}")))?;
        self.relocation.apply(&mut t);
        Ok(t)
    }
}

/// Byte spans of the elements of the JSON array `text` (strings and nesting respected;
/// the elements themselves are checked when parsed).
fn array_spans(text: &[u8]) -> Result<Vec<(u64, u32)>, String> {
    let ws = |b: u8| matches!(b, b' ' | b'\n' | b'\r' | b'\t');
    let mut i = 0;
    let skip = |i: &mut usize| {
        while *i < text.len() && ws(text[*i]) {
            *i += 1;
        }
    };
    skip(&mut i);
    if text.get(i) != Some(&b'[') {
        return Err("a task list is a JSON array".into());
    }
    i += 1;
    let mut spans = Vec::new();
    skip(&mut i);
    if text.get(i) == Some(&b']') {
        return Ok(spans);
    }
    loop {
        skip(&mut i);
        let start = i;
        let (mut depth, mut in_str, mut esc) = (0i64, false, false);
        while i < text.len() {
            let b = text[i];
            if in_str {
                match (esc, b) {
                    (true, _) => esc = false,
                    (false, b'\\') => esc = true,
                    (false, b'"') => in_str = false,
                    _ => {}
                }
            } else {
                match b {
                    b'"' => in_str = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' if depth > 0 => depth -= 1,
                    b',' | b']' if depth == 0 => break,
                    _ => {}
                }
            }
            i += 1;
        }
        let mut end = i;
        while end > start && ws(text[end - 1]) {
            end -= 1;
        }
        if i >= text.len() || end == start {
            return Err(format!("unterminated task list (task {})", spans.len()));
        }
        let len =
            u32::try_from(end - start).map_err(|_| format!("task {} too large", spans.len()))?;
        spans.push((start as u64, len));
        if text[i] == b']' {
            i += 1;
            skip(&mut i);
            if i != text.len() {
                return Err("text after the task list".into());
            }
            return Ok(spans);
        }
        i += 1;
    }
}

/// Writes an EDP-format task list (a JSON array pretty-printed with indent 4, as EDP
/// does) one task at a time.
pub struct TaskListWriter<W: Write> {
    out: W,
    n: usize,
}

impl TaskListWriter<BufWriter<File>> {
    pub fn create(path: &Path) -> std::io::Result<Self> {
        Ok(TaskListWriter::new(BufWriter::with_capacity(
            1 << 16,
            File::create(path)?,
        )))
    }
}

impl<W: Write> TaskListWriter<W> {
    pub fn new(out: W) -> Self {
        TaskListWriter { out, n: 0 }
    }

    pub fn push(&mut self, task: &Task) -> std::io::Result<()> {
        use serde::Serialize;
        let mut buf = Vec::with_capacity(4096);
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
        task.serialize(&mut ser).map_err(std::io::Error::other)?;
        self.out
            .write_all(if self.n == 0 { b"[\n" } else { b",\n" })?;
        // The task one level in: every line indented by 4 more spaces.
        for (k, line) in buf.split(|&b| b == b'\n').enumerate() {
            if k > 0 {
                self.out.write_all(b"\n")?;
            }
            self.out.write_all(b"    ")?;
            self.out.write_all(line)?;
        }
        self.n += 1;
        Ok(())
    }

    /// Ends the array (`[]` when empty) and a final newline; returns the writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.out
            .write_all(if self.n == 0 { b"[]\n" } else { b"\n]\n" })?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::SPEC_EXAMPLES;
    use super::*;

    #[test]
    fn streamed_list_is_byte_identical_and_maps_back() {
        let tasks = Task::spec_examples();
        let dir = tempfile::tempdir().unwrap();
        let whole = dir.path().join("whole.json");
        super::super::write_task_list(&whole, &tasks).unwrap();
        // Today's writer: the whole array through the pretty formatter.
        let mut want = Vec::new();
        {
            use serde::Serialize;
            let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
            let mut ser = serde_json::Serializer::with_formatter(&mut want, fmt);
            tasks.serialize(&mut ser).unwrap();
            want.push(b'\n');
        }
        assert_eq!(std::fs::read(&whole).unwrap(), want);
        for n in [0, 1, 3] {
            let mut w = TaskListWriter::new(Vec::new());
            for t in &tasks[..n] {
                w.push(t).unwrap();
            }
            let got = w.finish().unwrap();
            let mut want = Vec::new();
            {
                use serde::Serialize;
                let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
                let mut ser = serde_json::Serializer::with_formatter(&mut want, fmt);
                tasks[..n].serialize(&mut ser).unwrap();
                want.push(b'\n');
            }
            assert_eq!(got, want, "{n} tasks");
        }
        let list = TaskList::map(&whole).unwrap();
        assert_eq!(list.len(), 3);
        for (i, t) in list.iter().enumerate() {
            assert_eq!(*t.unwrap(), tasks[i]);
        }
        // The EDP spec's own file (other whitespace) maps too.
        let spec = dir.path().join("spec.json");
        std::fs::write(&spec, SPEC_EXAMPLES).unwrap();
        assert_eq!(TaskList::map(&spec).unwrap().len(), 3);
        std::fs::write(&spec, "[]").unwrap();
        assert_eq!(TaskList::map(&spec).unwrap().len(), 0);
        for bad in ["{}", "[{\"a\": \"]\"}", "[{}] x", ""] {
            std::fs::write(&spec, bad).unwrap();
            assert!(TaskList::map(&spec).is_err(), "{bad:?}");
        }
    }
}
