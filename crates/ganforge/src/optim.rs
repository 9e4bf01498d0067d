//! Adam (Kingma & Ba 2015) with PyTorch's update rule and its state keyed by parameter name.
//!
//! burn ships an Adam, but its saved state is keyed by parameter ids that are drawn at random
//! each time a model is built, so a model rebuilt to resume a run would not find its moments
//! and burn restarts them silently. Keying by name (`blocks.0.conv.weight`) makes the state
//! a plain set of tensors that goes into a safetensors checkpoint and back, exactly.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleMapper, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

use crate::params::HostTensor;

/// Adam's first and second moments of one parameter, flattened.
#[derive(Clone)]
struct Moments {
    m: Tensor<1>,
    v: Tensor<1>,
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

/// One Adam optimizer for one network.
#[derive(Clone)]
pub struct Adam {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Updates taken so far (Adam's t).
    pub steps: u64,
    state: BTreeMap<String, Moments>,
}

impl Adam {
    pub fn new(lr: f64, beta1: f64, beta2: f64, eps: f64) -> Self {
        Self { lr, beta1, beta2, eps, steps: 0, state: BTreeMap::new() }
    }

    /// Applies one update to every parameter of `module` that has a gradient in `grads`.
    pub fn step<M: Module>(&mut self, module: M, mut grads: GradientsParams) -> M {
        self.steps += 1;
        let t = self.steps as f64;
        let bias1 = 1.0 - self.beta1.powf(t);
        let bias2_sqrt = (1.0 - self.beta2.powf(t)).sqrt();
        let mut mapper = AdamMapper { adam: self, grads: &mut grads, path: Vec::new(), bias1, bias2_sqrt };
        module.map(&mut mapper)
    }

    /// The moments as named host tensors (`m.<param>`, `v.<param>`).
    pub fn state_tensors(&self) -> BTreeMap<String, HostTensor> {
        let mut out = BTreeMap::new();
        for (name, mo) in &self.state {
            out.insert(format!("m.{name}"), HostTensor::from_tensor(&mo.m));
            out.insert(format!("v.{name}"), HostTensor::from_tensor(&mo.v));
        }
        out
    }

    /// Restores the moments written by [`Adam::state_tensors`], checking them against the
    /// parameter shapes of the model they belong to.
    pub fn load_state<M: Module>(&mut self, module: &M, steps: u64, tensors: &BTreeMap<String, HostTensor>) -> Result<(), OptimStateError> {
        let shapes = crate::params::named_shapes(module);
        let device = module.devices().first().cloned().unwrap_or_default().inner();
        let mut state = BTreeMap::new();
        for (key, m) in tensors {
            let Some(name) = key.strip_prefix("m.") else {
                if key.starts_with("v.") {
                    continue;
                }
                return Err(OptimStateError::Unexpected(key.clone()));
            };
            let want: usize = shapes.get(name).ok_or_else(|| OptimStateError::Unexpected(name.to_string()))?.iter().product();
            let v = tensors.get(&format!("v.{name}")).ok_or_else(|| OptimStateError::Missing(name.to_string()))?;
            for got in [m.values.len(), v.values.len()] {
                if got != want {
                    return Err(OptimStateError::Shape { name: name.to_string(), got, want });
                }
            }
            let load = |h: &HostTensor| Tensor::<1>::from_floats(h.values.as_slice(), &device);
            state.insert(name.to_string(), Moments { m: load(m), v: load(v) });
        }
        self.state = state;
        self.steps = steps;
        Ok(())
    }
}

struct AdamMapper<'a> {
    adam: &'a mut Adam,
    grads: &'a mut GradientsParams,
    path: Vec<String>,
    bias1: f64,
    bias2_sqrt: f64,
}

impl ModuleMapper for AdamMapper<'_> {
    fn enter_module(&mut self, name: &str, container: &str) {
        crate::params::enter(&mut self.path, name, container);
    }

    fn exit_module(&mut self, _: &str, container: &str) {
        crate::params::exit(&mut self.path, container);
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = self.grads.remove::<D>(id) else {
            // Buffers (batch-norm running statistics) and frozen weights have no gradient.
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let a = &mut *self.adam;
        let dims = tensor.dims();
        let n: usize = dims.iter().product();
        let require_grad = tensor.is_require_grad();
        let p = tensor.inner().reshape([n]); // [n], off the autodiff graph
        let g = grad.inner().reshape([n]); // [n]
        let name = self.path.join(".");
        let (m, v) = match a.state.remove(&name) {
            Some(Moments { m, v }) => {
                (m.mul_scalar(a.beta1) + g.clone().mul_scalar(1.0 - a.beta1), v.mul_scalar(a.beta2) + g.square().mul_scalar(1.0 - a.beta2))
            }
            None => (g.clone().mul_scalar(1.0 - a.beta1), g.square().mul_scalar(1.0 - a.beta2)),
        };
        // PyTorch: p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
        let denom = v.clone().sqrt().div_scalar(self.bias2_sqrt).add_scalar(a.eps);
        let p = p - m.clone().div(denom).mul_scalar(a.lr / self.bias1);
        a.state.insert(name, Moments { m, v });
        let p = p.reshape(dims).autodiff();
        let p = if require_grad { p.require_grad() } else { p };
        Param::from_mapped_value(id, p, mapper)
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
        let mut adam = Adam::new(0.1, 0.5, 0.999, 1e-8);
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

    /// Two optimizers, one saved and reloaded halfway, take identical steps.
    #[test]
    fn state_round_trip_is_exact() {
        let device = Device::flex().autodiff();
        let layer: Linear = LinearConfig::new(3, 2).init(&device);
        let run = |layer: Linear, adam: &mut Adam, steps: usize| {
            let mut layer = layer;
            for i in 0..steps {
                let x = Tensor::<2>::from_floats([[1.0, -2.0, 0.5 + i as f32]], &device);
                let loss = layer.forward(x).powf_scalar(2.0).sum();
                let grads = GradientsParams::from_grads(loss.backward(), &layer);
                layer = adam.step(layer, grads);
            }
            layer
        };
        let mut a = Adam::new(0.01, 0.5, 0.999, 1e-8);
        let l = run(layer, &mut a, 3);
        let mut b = Adam::new(0.01, 0.5, 0.999, 1e-8);
        b.load_state(&l, a.steps, &a.state_tensors()).unwrap();
        let la = run(l.clone(), &mut a, 2);
        let lb = run(l, &mut b, 2);
        assert_eq!(crate::params::named_tensors(&la), crate::params::named_tensors(&lb));
    }

    #[test]
    fn mismatched_state_is_refused() {
        let device = Device::flex().autodiff();
        let layer: Linear = LinearConfig::new(3, 2).init(&device);
        let mut bad = BTreeMap::new();
        bad.insert("m.weight".to_string(), HostTensor { shape: vec![2], values: vec![0.0; 2] });
        bad.insert("v.weight".to_string(), HostTensor { shape: vec![2], values: vec![0.0; 2] });
        let e = Adam::new(0.1, 0.5, 0.999, 1e-8).load_state(&layer, 1, &bad).unwrap_err().to_string();
        assert!(e.contains("'weight' has 2 values, the parameter has 6"), "{e}");
    }
}
