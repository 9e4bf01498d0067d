//! `serve --model FILE`: a generator file alone (its metadata rebuilds G) makes the same images
//! as its run folder, and a file without that metadata is refused at start.

mod common;

use ganforge::burn::tensor::Device;
use ganforge_serve::server::{spawn_model, ServeOptions};

fn get(base: &str, path: &str) -> (u16, Vec<u8>) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut r = agent.get(&format!("{base}{path}")).call().unwrap();
    (r.status().as_u16(), r.body_mut().read_to_vec().unwrap())
}

#[test]
fn a_model_file_serves_the_runs_images_without_its_folder() {
    let out = tempfile::tempdir().unwrap();
    let run = common::tiny_run(out.path(), &["model.classes=10"]);
    let by_run = common::serve(&run);
    let run_base = format!("http://{}", by_run.addr);

    // The file moved away from its run folder.
    let alone = tempfile::tempdir().unwrap();
    let file = alone.path().join("g.safetensors");
    std::fs::copy(run.join("checkpoints/step_000004/g.safetensors"), &file).unwrap();
    let by_file = spawn_model(&file, "127.0.0.1:0".parse().unwrap(), Device::flex(), ServeOptions::default()).unwrap();
    let file_base = format!("http://{}", by_file.addr);

    for q in ["/api/generate?seed=5", "/api/generate?seed=5&class=3", "/api/generate?seed=9&n=4"] {
        let (a, b) = (get(&run_base, q), get(&file_base, q));
        assert_eq!((a.0, b.0), (200, 200), "{q}");
        assert_eq!(a.1, b.1, "{q}: the same image from the run and from the file alone");
    }
    let model: serde_json::Value = serde_json::from_slice(&get(&file_base, "/api/model").1).unwrap();
    assert_eq!(model["model"]["step"], 4);
    assert_eq!(model["model"]["classes"], 10);
    assert_eq!(model["model"]["class_names"][3], "3");
    assert_eq!(get(&file_base, "/samples/step_000004.png").0, 404, "no run folder, no grids");
    let metrics: serde_json::Value = serde_json::from_slice(&get(&file_base, "/api/metrics").1).unwrap();
    assert_eq!(metrics["steps"].as_array().unwrap().len(), 0);

    // Weights without the metadata (as checkpoints of earlier versions have them).
    let bare = alone.path().join("bare.safetensors");
    let tensors = ganforge::params::read_safetensors(&file).unwrap();
    std::fs::write(&bare, ganforge::params::safetensors_bytes(&tensors)).unwrap();
    let e = spawn_model(&bare, "127.0.0.1:0".parse().unwrap(), Device::flex(), ServeOptions::default()).err().unwrap().to_string();
    assert!(e.contains("carries no ganforge config"), "{e}");
    // With its config but a NaN weight: refused at start too, by tensor name.
    let mut t = tensors.clone();
    let (name, first) = t.iter_mut().next().unwrap();
    let name = name.clone();
    first.values[0] = f32::NAN;
    let meta = ganforge::params::safetensors_metadata(&file).unwrap();
    std::fs::write(&bare, ganforge::params::safetensors_bytes_with(&t, &meta)).unwrap();
    let e = spawn_model(&bare, "127.0.0.1:0".parse().unwrap(), Device::flex(), ServeOptions::default()).err().unwrap().to_string();
    assert!(e.contains(&name) && e.contains("NaN"), "{e}");
}
