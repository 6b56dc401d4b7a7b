fn main() {
    napi_build::setup();
    // Recorded for `dnsnat --version`, so a bug report names the exact build.
    let target = std::env::var("TARGET").unwrap_or_default();
    let profile = std::env::var("PROFILE").unwrap_or_default();
    let rustc =
        std::process::Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .unwrap_or_default();
    println!("cargo:rustc-env=DNSNAT_TARGET={target}");
    println!("cargo:rustc-env=DNSNAT_PROFILE={profile}");
    println!("cargo:rustc-env=DNSNAT_RUSTC={}", rustc.trim());
}
