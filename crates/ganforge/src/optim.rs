//! Adam (Kingma & Ba 2015) and RMSProp (Tieleman & Hinton 2012, the WGAN paper's optimizer),
//! with PyTorch's update rules and their state keyed by parameter name.
//!
//! burn ships an Adam, but its saved state is keyed by parameter ids that are drawn at random
//! each time a model is built, so a model rebuilt to resume a run would not find its moments
//! and burn restarts them silently. Keying by name (`blocks.0.conv.weight`) makes the state
//! a plain set of tensors that goes into a safetensors checkpoint and back, exactly.
//!
//! In a data-parallel run each rank's optimizer first averages the gradients over the ranks
//! (one all-reduce for the whole network), so that every rank applies the same update.

use std::collections::BTreeMap;
use std::sync::Arc;

use burn::module::{Module, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};

use crate::dist::Group;
use crate::kernels::{self, optim::AdamStep};
use crate::params::{HostTensor, NamedVisit, Paths};

/// The optimizer of both networks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// Adam (Kingma & Ba 2015), with beta1, beta2 and eps from this section.
    Adam,
    /// RMSProp with PyTorch's defaults (alpha 0.99, no momentum), as in the WGAN paper, which
    /// found momentum-based optimizers unstable for the critic.
    Rmsprop,
}

/// The moments of one parameter, flattened: Adam keeps both, RMSProp only the second.
#[derive(Clone)]
struct Moments {
    m: Option<Tensor<1>>,
    v: Tensor<1>,
}

/// The update rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rule {
    /// m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2, p -= lr m_hat / (sqrt(v_hat) + eps).
    Adam { beta1: f64, beta2: f64 },
    /// v = alpha v + (1 - alpha) g^2, p -= lr g / (sqrt(v) + eps) (PyTorch's, no momentum).
    RmsProp { alpha: f64 },
}

#[derive(Debug, thiserror::Error)]
pub enum OptimStateError {
    #[error("optimizer state has no second moment for '{0}'")]
    Missing(String),
    #[error("optimizer state for '{name}' has {got} values, the parameter has {want}")]
    Shape { name: String, got: usize, want: usize },
    #[error("optimizer state holds '{0}', which is no parameter of this model")]
    Unexpected(String),
}

/// One optimizer for one network.
#[derive(Clone)]
pub struct Optimizer {
    pub rule: Rule,
    /// Learning rate of the next step (a schedule may change it between steps).
    pub lr: f64,
    pub eps: f64,
    /// Updates taken so far (Adam's t).
    pub steps: u64,
    state: BTreeMap<String, Moments>,
    /// The ranks whose gradients are averaged before each update (one process: itself).
    group: Arc<dyn Group>,
}

impl Optimizer {
    pub fn adam(lr: f64, beta1: f64, beta2: f64, eps: f64) -> Self {
        Self { rule: Rule::Adam { beta1, beta2 }, lr, eps, steps: 0, state: BTreeMap::new(), group: crate::dist::solo() }
    }

    pub fn rmsprop(lr: f64, alpha: f64, eps: f64) -> Self {
        Self { rule: Rule::RmsProp { alpha }, lr, eps, steps: 0, state: BTreeMap::new(), group: crate::dist::solo() }
    }

    /// The same optimizer on every rank of `group`: each update applies the ranks' mean
    /// gradient (data-parallel training).
    pub fn averaged_over(mut self, group: Arc<dyn Group>) -> Self {
        self.group = group;
        self
    }

    /// Applies one update to every parameter of `module` that has a gradient in `grads`
    /// (in a group of ranks, the mean of the ranks' gradients).
    pub fn step<M: Module>(&mut self, module: M, grads: GradientsParams) -> M {
        self.steps += 1;
        let mut grads = if self.group.size() > 1 { group_mean(&*self.group, &module, grads) } else { grads };
        let mut mapper = crate::params::Paths::new(StepMapper { opt: self, grads: &mut grads });
        module.map(&mut mapper)
    }

    /// Adam's constants for the current step (t = `steps`): both update paths take them here.
    fn adam_step(&self, beta1: f64, beta2: f64) -> AdamStep {
        let t = self.steps as f64;
        AdamStep { beta1, beta2, step_size: self.lr / (1.0 - beta1.powf(t)), bias2_sqrt: (1.0 - beta2.powf(t)).sqrt(), eps: self.eps }
    }

    /// The moments as named host tensors (`m.<param>` for Adam, `v.<param>`).
    pub fn state_tensors(&self) -> BTreeMap<String, HostTensor> {
        let mut out = BTreeMap::new();
        for (name, mo) in &self.state {
            if let Some(m) = &mo.m {
                out.insert(format!("m.{name}"), HostTensor::from_tensor(m));
            }
            out.insert(format!("v.{name}"), HostTensor::from_tensor(&mo.v));
        }
        out
    }

    /// Restores the moments written by [`Optimizer::state_tensors`], checking them against the
    /// parameter shapes of the model they belong to and against the rule (Adam needs `m`).
    pub fn load_state<M: Module>(&mut self, module: &M, steps: u64, tensors: &BTreeMap<String, HostTensor>) -> Result<(), OptimStateError> {
        let shapes = crate::params::named_shapes(module);
        let device = module.devices().first().cloned().unwrap_or_default().inner();
        let adam = matches!(self.rule, Rule::Adam { .. });
        let mut state = BTreeMap::new();
        for (key, v) in tensors {
            let Some(name) = key.strip_prefix("v.") else {
                if key.starts_with("m.") && adam {
                    continue;
                }
                return Err(OptimStateError::Unexpected(key.clone()));
            };
            let want: usize = shapes.get(name).ok_or_else(|| OptimStateError::Unexpected(name.to_string()))?.iter().product();
            let m = tensors.get(&format!("m.{name}"));
            if adam && m.is_none() {
                return Err(OptimStateError::Missing(format!("m.{name}")));
            }
            for got in [Some(v), m].into_iter().flatten().map(|t| t.values.len()) {
                if got != want {
                    return Err(OptimStateError::Shape { name: name.to_string(), got, want });
                }
            }
            let load = |h: &HostTensor| Tensor::<1>::from_floats(h.values.as_slice(), &device);
            state.insert(name.to_string(), Moments { m: m.filter(|_| adam).map(load), v: load(v) });
        }
        self.state = state;
        self.steps = steps;
        Ok(())
    }
}

/// The mean over `group`'s ranks of every gradient of `module` in `grads`: all of them flattened
/// into one buffer in parameter order (the same on every rank, since every rank holds the
/// same model), one all-reduce, and back. One message per network, not one per tensor: an
/// all-reduce's fixed cost is paid once.
fn group_mean<M: Module>(group: &dyn Group, module: &M, grads: GradientsParams) -> GradientsParams {
    struct Flatten<'a> {
        grads: &'a GradientsParams,
        flat: Vec<f32>,
    }
    impl NamedVisit for Flatten<'_> {
        fn visit<const D: usize>(&mut self, _: &str, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(param.id) {
                self.flat.extend(HostTensor::from_tensor(&g).values);
            }
        }
    }
    struct Unflatten<'a> {
        grads: GradientsParams,
        flat: &'a [f32],
        at: usize,
    }
    impl NamedVisit for Unflatten<'_> {
        fn visit<const D: usize>(&mut self, _: &str, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.remove::<D>(param.id) {
                let shape = g.dims();
                let n: usize = shape.iter().product();
                let mean = Tensor::<D>::from_data(TensorData::new(self.flat[self.at..self.at + n].to_vec(), shape), &g.device());
                self.at += n;
                self.grads.register::<D>(param.id, mean);
            }
        }
    }
    let mut flatten = Paths::new(Flatten { grads: &grads, flat: Vec::new() });
    module.visit(&mut flatten);
    let mut flat = flatten.inner.flat;
    crate::dist::mean(group, &mut flat);
    let mut unflatten = Paths::new(Unflatten { grads, flat: &flat, at: 0 });
    module.visit(&mut unflatten);
    unflatten.inner.grads
}

struct StepMapper<'a> {
    opt: &'a mut Optimizer,
    grads: &'a mut GradientsParams,
}

impl crate::params::NamedMap for StepMapper<'_> {
    fn map<const D: usize>(&mut self, path: &str, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = self.grads.remove::<D>(id) else {
            // Buffers (batch-norm running statistics) and frozen weights have no gradient.
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let o = &mut *self.opt;
        let dims = tensor.dims();
        let n: usize = dims.iter().product();
        let require_grad = tensor.is_require_grad();
        let p = tensor.inner().reshape([n]); // [n], off the autodiff graph
        let g = grad.inner().reshape([n]); // [n]
        let name = path.to_string();
        let old = o.state.remove(&name);
        let (p, moments) = if crate::ops::own_takes(&p) { fused_update(o, p, g, old) } else { tensor_update(o, p, g, old) };
        o.state.insert(name, moments);
        let p = p.reshape(dims).autodiff();
        let p = if require_grad { p.require_grad() } else { p };
        Param::from_mapped_value(id, p, mapper)
    }
}

/// One parameter's update through tensor operations (any backend).
fn tensor_update(o: &Optimizer, p: Tensor<1>, g: Tensor<1>, old: Option<Moments>) -> (Tensor<1>, Moments) {
    match o.rule {
        Rule::Adam { beta1, beta2 } => {
            let (m, v) = match old {
                Some(Moments { m: Some(m), v }) => {
                    (m.mul_scalar(beta1) + g.clone().mul_scalar(1.0 - beta1), v.mul_scalar(beta2) + g.square().mul_scalar(1.0 - beta2))
                }
                _ => (g.clone().mul_scalar(1.0 - beta1), g.square().mul_scalar(1.0 - beta2)),
            };
            // PyTorch: p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
            let s = o.adam_step(beta1, beta2);
            let denom = v.clone().sqrt().div_scalar(s.bias2_sqrt).add_scalar(s.eps);
            (p - m.clone().div(denom).mul_scalar(s.step_size), Moments { m: Some(m), v })
        }
        Rule::RmsProp { alpha } => {
            let v = match old {
                Some(Moments { v, .. }) => v.mul_scalar(alpha) + g.clone().square().mul_scalar(1.0 - alpha),
                None => g.clone().square().mul_scalar(1.0 - alpha),
            };
            let denom = v.clone().sqrt().add_scalar(o.eps);
            (p - g.div(denom).mul_scalar(o.lr), Moments { m: None, v })
        }
    }
}

/// The same update in one pass over host buffers (the CPU backend; `kernels::optim`).
fn fused_update(o: &Optimizer, p: Tensor<1>, g: Tensor<1>, old: Option<Moments>) -> (Tensor<1>, Moments) {
    let device = p.device();
    let host = |t: Tensor<1>| t.into_data().try_into_vec::<f32>().expect("f32 values: the caller checked the dtype");
    let n = p.dims()[0];
    let (mut pv, gv) = (host(p), host(g));
    let tensor = |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v, [n]), &device);
    match o.rule {
        Rule::Adam { beta1, beta2 } => {
            let (fresh, mut m, mut v) = match old {
                Some(Moments { m: Some(m), v }) => (false, host(m), host(v)),
                _ => (true, vec![0.0; n], vec![0.0; n]),
            };
            kernels::optim::adam(&mut pv, &gv, &mut m, &mut v, o.adam_step(beta1, beta2), fresh);
            (tensor(pv), Moments { m: Some(tensor(m)), v: tensor(v) })
        }
        Rule::RmsProp { alpha } => {
            let (fresh, mut v) = match old {
                Some(Moments { v, .. }) => (false, host(v)),
                None => (true, vec![0.0; n]),
            };
            kernels::optim::rmsprop(&mut pv, &gv, &mut v, alpha, o.lr, o.eps, fresh);
            (tensor(pv), Moments { m: None, v: tensor(v) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::Device;

    /// Reference: PyTorch 2.x `torch.optim.Adam(lr=0.1, betas=(0.5, 0.999), eps=1e-8)` on
    /// f(w) = sum(w * x) for a 1x1 linear layer without bias, x = 2: the gradient is always 2,
    /// so m_hat = 2, v_hat = 4 and every step moves w by lr * 2 / (2 + 1e-8) = 0.1 (to f32).
    #[test]
    fn constant_gradient_moves_by_lr() {
        let device = Device::flex().autodiff();
        let layer: Linear = LinearConfig::new(1, 1).with_bias(false).init(&device);
        let layer = crate::params::map_named(layer, |_, h| Some(HostTensor { shape: h.shape.clone(), values: vec![1.0] }));
        let mut adam = Optimizer::adam(0.1, 0.5, 0.999, 1e-8);
        let mut layer = layer;
        for step in 1..=3 {
            let x = Tensor::<2>::from_floats([[2.0]], &device);
            let loss = layer.forward(x).sum();
            let grads = GradientsParams::from_grads(loss.backward(), &layer);
            layer = adam.step(layer, grads);
            let w = layer.weight.val().into_data().try_to_vec::<f32>().unwrap()[0];
            assert!((w - (1.0 - 0.1 * step as f32)).abs() < 1e-6, "step {step}: {w}");
        }
        assert_eq!(adam.steps, 3);
        let state = adam.state_tensors();
        assert_eq!(state.keys().cloned().collect::<Vec<_>>(), vec!["m.weight", "v.weight"]);
        // m = 2 * (1 - 0.5^3), v = 4 * (1 - 0.999^3)
        assert!((state["m.weight"].values[0] - 1.75).abs() < 1e-6);
        assert!((state["v.weight"].values[0] - 4.0 * (1.0 - 0.999f32.powi(3))).abs() < 1e-6);
    }

    /// The one-pass update on host buffers gives the tensor operations' values, bit for bit, for
    /// both rules, from fresh moments and from moments carried over.
    #[test]
    fn fused_update_equals_tensor_update() {
        let device = Device::flex();
        let n = 1000;
        let values = |seed: usize| (0..n).map(|i| (((i * 37 + seed * 11) % 101) as f32 - 50.0) / 25.0).collect::<Vec<f32>>();
        let t = |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v, [n]), &device);
        let host = |t: &Tensor<1>| t.clone().into_data().try_into_vec::<f32>().unwrap();
        for mut opt in [Optimizer::adam(2e-4, 0.5, 0.999, 1e-8), Optimizer::rmsprop(5e-5, 0.99, 1e-8)] {
            let (mut fused, mut plain) = ((t(values(1)), None), (t(values(1)), None));
            for step in 1..=3 {
                opt.steps = step;
                let g = t(values(step as usize + 1));
                fused = {
                    let (p, m) = fused_update(&opt, fused.0, g.clone(), fused.1);
                    (p, Some(m))
                };
                plain = {
                    let (p, m) = tensor_update(&opt, plain.0, g, plain.1);
                    (p, Some(m))
                };
                assert_eq!(host(&fused.0), host(&plain.0), "{:?} step {step}: parameters", opt.rule);
                let (fm, pm) = (fused.1.as_ref().unwrap(), plain.1.as_ref().unwrap());
                assert_eq!(host(&fm.v), host(&pm.v), "{:?} step {step}: second moments", opt.rule);
                assert_eq!(fm.m.as_ref().map(host), pm.m.as_ref().map(host), "{:?} step {step}: first moments", opt.rule);
            }
        }
    }

    /// Two optimizers, one saved and reloaded halfway, take identical steps.
    #[test]
    fn state_round_trip_is_exact() {
        let device = Device::flex().autodiff();
        let layer: Linear = LinearConfig::new(3, 2).init(&device);
        let run = |layer: Linear, adam: &mut Optimizer, steps: usize| {
            let mut layer = layer;
            for i in 0..steps {
                let x = Tensor::<2>::from_floats([[1.0, -2.0, 0.5 + i as f32]], &device);
                let loss = layer.forward(x).powf_scalar(2.0).sum();
                let grads = GradientsParams::from_grads(loss.backward(), &layer);
                layer = adam.step(layer, grads);
            }
            layer
        };
        let mut a = Optimizer::adam(0.01, 0.5, 0.999, 1e-8);
        let l = run(layer, &mut a, 3);
        let mut b = Optimizer::adam(0.01, 0.5, 0.999, 1e-8);
        b.load_state(&l, a.steps, &a.state_tensors()).unwrap();
        let la = run(l.clone(), &mut a, 2);
        let lb = run(l, &mut b, 2);
        assert_eq!(crate::params::named_tensors(&la), crate::params::named_tensors(&lb));
    }

    /// Reference: PyTorch `torch.optim.RMSprop(lr=0.01, alpha=0.99, eps=1e-8)` from w = 1 on
    /// f(w) = w * x with x = 2: v_1 = 0.01 * 4, w_1 = 1 - 0.01 * 2 / (sqrt(0.04) + 1e-8) = 0.9;
    /// v_2 = 0.99 * 0.04 + 0.04, w_2 = w_1 - 0.01 * 2 / sqrt(v_2).
    #[test]
    fn rmsprop_follows_pytorch() {
        let device = Device::flex().autodiff();
        let layer: Linear = LinearConfig::new(1, 1).with_bias(false).init(&device);
        let mut layer = crate::params::map_named(layer, |_, h| Some(HostTensor { shape: h.shape.clone(), values: vec![1.0] }));
        let mut opt = Optimizer::rmsprop(0.01, 0.99, 1e-8);
        let mut ws = Vec::new();
        for _ in 0..2 {
            let loss = layer.forward(Tensor::<2>::from_floats([[2.0]], &device)).sum();
            let grads = GradientsParams::from_grads(loss.backward(), &layer);
            layer = opt.step(layer, grads);
            ws.push(layer.weight.val().into_data().try_to_vec::<f32>().unwrap()[0] as f64);
        }
        let w2 = 0.9 - 0.01 * 2.0 / (0.99f64 * 0.04 + 0.04).sqrt();
        assert!((ws[0] - 0.9).abs() < 1e-6 && (ws[1] - w2).abs() < 1e-6, "{ws:?} vs [0.9, {w2}]");
        let state = opt.state_tensors();
        assert_eq!(state.keys().cloned().collect::<Vec<_>>(), vec!["v.weight"], "RMSProp keeps no first moment");
        // An RMSProp state does not load into Adam, which needs m.
        let e = Optimizer::adam(0.1, 0.5, 0.999, 1e-8).load_state(&layer, 2, &state).unwrap_err().to_string();
        assert!(e.contains("m.weight"), "{e}");
    }

    #[test]
    fn mismatched_state_is_refused() {
        let device = Device::flex().autodiff();
        let layer: Linear = LinearConfig::new(3, 2).init(&device);
        let mut bad = BTreeMap::new();
        bad.insert("m.weight".to_string(), HostTensor { shape: vec![2], values: vec![0.0; 2] });
        bad.insert("v.weight".to_string(), HostTensor { shape: vec![2], values: vec![0.0; 2] });
        let e = Optimizer::adam(0.1, 0.5, 0.999, 1e-8).load_state(&layer, 1, &bad).unwrap_err().to_string();
        assert!(e.contains("'weight' has 2 values, the parameter has 6"), "{e}");
    }
}
