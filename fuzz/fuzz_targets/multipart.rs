//! `multipart/form-data` bodies through the upload handlers' parsing (`net::multipart::Form`
//! with its byte and part limits, then the JSON part and the files as `POST /api/messages`
//! reads them), delivered in an arbitrary split. Properties: an accepted form respects every
//! limit; a refusal is a 4xx.
#![no_main]

use bytes::Bytes;
use discodeit::net::multipart::{Form, PartLimits};
use discodeit::service::messages::MessageCreateRequest;
use discodeit_fuzz::chunks;
use http_body::Frame;
use http_body_util::StreamBody;
use libfuzzer_sys::fuzz_target;
use std::convert::Infallible;
use std::sync::OnceLock;

static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let [seed, limits, ref body @ ..] = *data else {
        return;
    };
    let rt = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
    });
    let max_file = 16 + usize::from(limits & 0x0f) * 16;
    let max_request = 64 + usize::from(limits >> 4) * 64;
    let parts = PartLimits {
        name: "attachments",
        files: 3,
    };
    let content_type = match seed % 4 {
        0 => "multipart/form-data; boundary=\"XyZ\"",
        3 => "text/plain",
        _ => "multipart/form-data; boundary=XyZ",
    };
    let frames: Vec<Result<Frame<Bytes>, Infallible>> = chunks(seed, body)
        .into_iter()
        .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    let stream = StreamBody::new(futures_util::stream::iter(frames));
    let result = rt.block_on(Form::read_body(
        content_type,
        Some(stream),
        max_file,
        max_request,
        parts,
    ));
    match result {
        Ok(form) => {
            let total: usize = form.parts.iter().map(|p| p.bytes.len()).sum();
            assert!(total <= max_request, "form over the request limit accepted");
            for p in &form.parts {
                assert!(
                    p.bytes.len() <= max_file,
                    "part over the file limit accepted"
                );
            }
            let files = form.files("attachments");
            assert!(files.len() <= parts.files, "more files than allowed");
            assert!(
                form.parts.len() <= parts.files + 8,
                "more parts than allowed"
            );
            if let Err(e) = form.json::<MessageCreateRequest>("messageCreateRequest") {
                assert_eq!(e.status, 400);
            }
        }
        Err(e) => {
            let status = e.status;
            assert!((400..500).contains(&status), "refusal with status {status}");
        }
    }
});
