//! A small HTTP/1.1 file server on 127.0.0.1 for the download tests: it honours
//! `Range: bytes=N-`, and can be told to cut connections halfway, ignore ranges, or serve
//! other bytes than the published ones. Every request is logged with the range it asked for.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct Behaviour {
    /// Cut this many of the coming responses after half of their body.
    pub cut_next: usize,
    /// Answer ranged requests with the whole file (status 200).
    pub ignore_range: bool,
}

pub struct Server {
    pub url: String,
    pub files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    pub behaviour: Arc<Mutex<Behaviour>>,
    /// (path, first byte asked for) per request.
    pub log: Arc<Mutex<Vec<(String, u64)>>>,
}

impl Server {
    pub fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let files: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
        let behaviour: Arc<Mutex<Behaviour>> = Arc::default();
        let log: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
        let (f, b, l) = (files.clone(), behaviour.clone(), log.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                if reader.read_line(&mut request).is_err() {
                    continue;
                }
                let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
                let mut from = 0u64;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
                        from = v.trim().trim_end_matches('-').parse().unwrap_or(0);
                    }
                }
                l.lock().unwrap().push((path.clone(), from));
                let Some(body) = f.lock().unwrap().get(&path).cloned() else {
                    let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    continue;
                };
                let mut beh = b.lock().unwrap();
                let ranged = from > 0 && !beh.ignore_range;
                let start = if ranged { from as usize } else { 0 };
                let head = if ranged {
                    format!(
                        "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{}/{}\r\nConnection: close\r\n\r\n",
                        body.len() - start,
                        body.len() - 1,
                        body.len()
                    )
                } else {
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())
                };
                let rest = &body[start..];
                let send = if beh.cut_next > 0 {
                    beh.cut_next -= 1;
                    &rest[..rest.len() / 2]
                } else {
                    rest
                };
                drop(beh);
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(send);
                let _ = stream.flush();
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
        });
        Server { url, files, behaviour, log }
    }

    pub fn serve(&self, path: &str, bytes: Vec<u8>) {
        self.files.lock().unwrap().insert(path.to_string(), bytes);
    }
}
