//! Prepares the web app's files (`src/api/ui/`) for `src/api/ui.rs`: each
//! file's references to the others get `?v=<hash of that file>`, so that
//! every URL but the start page's names one version of one file and can be
//! cached for good (`immutable`); each file is compressed once, here, with
//! Brotli and gzip, so that serving it costs no CPU. The start page itself
//! is not cached: it is what brings a new release's hashes to a browser.

use std::{
    collections::BTreeMap,
    env, fs,
    io::Write as _,
    path::{Path, PathBuf},
};

use sha2::{Digest as _, Sha256};

/// The app's files, relative to `src/api/ui/`.
const FILES: &[&str] = &[
    "index.html",
    "style.css",
    "app.js",
    "api.js",
    "branches.js",
    "data.js",
    "dom.js",
    "drafts.js",
    "list.js",
    "markdown.js",
    "message.js",
    "notify.js",
    "search.js",
    "vendor/marked.esm.js",
    "icon.svg",
];

/// Replaced in the start page by the auth mode (see `src/api/ui.rs`).
const AUTH_MODE_MARKER: &str = "{{auth_mode}}";
const AUTH_MODES: &[&str] = &["none", "easyauth"];

fn main() {
    let src = Path::new("src/api/ui");
    println!("cargo:rerun-if-changed=src/api/ui");
    for name in FILES {
        println!("cargo:rerun-if-changed=src/api/ui/{name}");
    }
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap()).join("ui");
    fs::create_dir_all(&out).unwrap();

    // A file added to the folder but not to FILES would silently not be
    // served: stop the build instead.
    for dir in ["", "vendor"] {
        for entry in fs::read_dir(src.join(dir)).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            let path = if dir.is_empty() {
                name
            } else {
                format!("{dir}/{name}")
            };
            let served = [".html", ".css", ".js", ".svg"]
                .iter()
                .any(|e| path.ends_with(e));
            assert!(
                !served || FILES.contains(&path.as_str()),
                "src/api/ui/{path} is not in build.rs's FILES"
            );
        }
    }

    let mut sources: BTreeMap<&str, String> = FILES
        .iter()
        .map(|name| {
            let text = fs::read_to_string(src.join(name))
                .unwrap_or_else(|e| panic!("src/api/ui/{name}: {e}"));
            (*name, text)
        })
        .collect();

    // Rewrite references leaves first: a file's hash covers the hashes of
    // the files it names, so a change anywhere reaches the start page.
    let mut hashes: BTreeMap<&str, String> = BTreeMap::new();
    while hashes.len() < FILES.len() {
        let ready: Vec<&str> = FILES
            .iter()
            .copied()
            .filter(|name| !hashes.contains_key(name))
            .filter(|name| {
                FILES.iter().all(|other| {
                    other == name
                        || hashes.contains_key(other)
                        || references(other).iter().all(|r| !sources[name].contains(r))
                })
            })
            .collect();
        assert!(
            !ready.is_empty(),
            "the app's files refer to each other in a cycle"
        );
        for name in ready {
            let mut text = sources[name].clone();
            for (other, hash) in &hashes {
                for (plain, versioned) in references(other).iter().zip(versioned(other, hash)) {
                    text = text.replace(plain, &versioned);
                }
            }
            hashes.insert(name, hash_of(text.as_bytes()));
            sources.insert(name, text);
        }
    }

    let mut table = String::from("&[\n");
    for name in FILES.iter().filter(|n| **n != "index.html") {
        let stem = write_variants(&out, name, sources[name].as_bytes());
        table.push_str(&format!(
            "    File {{ name: {name:?}, content_type: {:?}, body: {} }},\n",
            content_type(name),
            body(&stem, &hashes[name]),
        ));
    }
    table.push(']');
    let mut pages = String::from("&[\n");
    for mode in AUTH_MODES {
        let text = sources["index.html"].replace(AUTH_MODE_MARKER, mode);
        let stem = write_variants(&out, &format!("index.{mode}.html"), text.as_bytes());
        pages.push_str(&format!(
            "    ({mode:?}, {}),\n",
            body(&stem, &hash_of(text.as_bytes()))
        ));
    }
    pages.push(']');
    let code = format!(
        "/// The app's files but the start page, as served.\n\
         const FILES: &[File] = {table};\n\
         /// The start page, per auth mode.\n\
         const START_PAGES: &[(&str, Body)] = {pages};\n"
    );
    fs::write(out.join("files.rs"), code).unwrap();
}

/// How a file is named by the others: from the page, and from a module.
fn references(name: &str) -> [String; 3] {
    [
        format!("\"/api/ui/{name}\""),
        format!("'./{name}'"),
        format!("\"./{name}\""),
    ]
}

fn versioned(name: &str, hash: &str) -> [String; 3] {
    [
        format!("\"/api/ui/{name}?v={hash}\""),
        format!("'./{name}?v={hash}'"),
        format!("\"./{name}?v={hash}\""),
    ]
}

fn hash_of(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        other => panic!("no content type for {other:?}"),
    }
}

/// Writes the file as it is, gzipped and in Brotli; returns the stem of
/// the three files in `out`.
fn write_variants(out: &Path, name: &str, bytes: &[u8]) -> String {
    let stem = name.replace('/', "_");
    fs::write(out.join(&stem), bytes).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(bytes).unwrap();
    fs::write(out.join(format!("{stem}.gz")), gz.finish().unwrap()).unwrap();
    let mut br = Vec::new();
    let params = brotli::enc::BrotliEncoderParams {
        quality: 11,
        lgwin: 22,
        ..Default::default()
    };
    brotli::BrotliCompress(&mut &bytes[..], &mut br, &params).unwrap();
    fs::write(out.join(format!("{stem}.br")), br).unwrap();
    stem
}

fn body(stem: &str, hash: &str) -> String {
    let path = |suffix: &str| format!("concat!(env!(\"OUT_DIR\"), \"/ui/{stem}{suffix}\")");
    format!(
        "Body {{ hash: {hash:?}, identity: include_bytes!({}), gzip: include_bytes!({}), brotli: include_bytes!({}) }}",
        path(""),
        path(".gz"),
        path(".br"),
    )
}
