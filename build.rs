//! The revision stackd is built from, for `stackd_build_info{revision}` and `--version`:
//! `STACKD_REVISION` when the build sets it (a container build without `.git`), else
//! `git rev-parse`, else `unknown`.

fn main() {
    println!("cargo:rerun-if-env-changed=STACKD_REVISION");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    let revision = std::env::var("STACKD_REVISION").ok().filter(|r| !r.trim().is_empty()).unwrap_or_else(|| {
        std::process::Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| "unknown".to_string())
    });
    println!("cargo:rustc-env=STACKD_REVISION={revision}");
}
