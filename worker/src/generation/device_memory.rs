//! Free and total memory of a CUDA device, as `nvidia-smi` reports them (libtorch's Rust
//! bindings have no `mem_get_info`, and this crate forbids the unsafe code a direct
//! `cudaMemGetInfo` call would take).

use std::process::Command;

/// `(free, total)` bytes of `cuda:index`, or `None` when `nvidia-smi` cannot tell. The index is
/// mapped through `CUDA_VISIBLE_DEVICES` when that lists plain device numbers.
pub fn cuda_free_bytes(index: usize) -> Option<(usize, usize)> {
    let physical = match std::env::var("CUDA_VISIBLE_DEVICES") {
        Ok(list) if !list.trim().is_empty() => list.split(',').nth(index)?.trim().parse::<usize>().ok()?,
        _ => index,
    };
    let out = Command::new("nvidia-smi")
        .args(["--query-gpu=memory.free,memory.total", "--format=csv,noheader,nounits"])
        .arg(format!("--id={physical}"))
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    parse_free_total(&String::from_utf8_lossy(&out.stdout))
}

/// Parses `"FREE, TOTAL"` in MiB.
fn parse_free_total(text: &str) -> Option<(usize, usize)> {
    let mut fields = text.lines().next()?.split(',').map(|f| f.trim().parse::<usize>().ok());
    let (free, total) = (fields.next()??, fields.next()??);
    Some((free << 20, total << 20))
}

#[cfg(test)]
mod tests {
    use super::parse_free_total;

    #[test]
    fn reads_nvidia_smi_csv() {
        assert_eq!(parse_free_total("142000, 143771\n"), Some((142000 << 20, 143771 << 20)));
        assert_eq!(parse_free_total("[N/A], 143771\n"), None);
        assert_eq!(parse_free_total(""), None);
    }
}
