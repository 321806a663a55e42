//! The network: a linear model or a small MLP (one ReLU hidden layer), defined once as a
//! burn module and used both to train (on the ndarray backend with autodiff) and to
//! predict. Its weights leave burn as plain [`Layer`]s, which a model file stores.
//!
//! Initial weights come from our own seeded generator rather than burn's, whose seed may
//! be process-global: two trainings with the same seed and data give the same model.

use burn::module::{Module, Param};
use burn::nn::loss::{MseLoss, Reduction};
use burn::nn::Linear;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{activation::relu, Device, Tensor, TensorData};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

pub use crate::config::Architecture;

/// One dense layer: `out = in · weight + bias`, `weight` row-major `[inputs][outputs]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    pub inputs: usize,
    pub outputs: usize,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

impl Layer {
    /// Whether the sizes agree with each other.
    pub fn is_consistent(&self) -> bool {
        self.weight.len() == self.inputs * self.outputs
            && self.bias.len() == self.outputs
            && self.weight.iter().chain(&self.bias).all(|w| w.is_finite())
    }
}

/// How a network is fitted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    pub architecture: Architecture,
    /// Hidden units of the MLP.
    pub hidden: usize,
    /// Adam steps (each on a batch of at most [`BATCH_ROWS`] rows).
    pub epochs: usize,
    pub learning_rate: f64,
    pub seed: u64,
}

/// The ndarray CPU backend. burn 0.22 deprecates it in favour of its new pure-Rust `flex`
/// backend; ndarray is the long-proven one, and the choice is this one line.
#[allow(deprecated)]
fn cpu() -> Device {
    Device::ndarray()
}

#[derive(Module, Debug)]
struct Net {
    layers: Vec<Linear>,
}

impl Net {
    fn forward(&self, mut x: Tensor<2>) -> Tensor<2> {
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            if i < last {
                x = relu(x);
            }
        }
        x
    }

    fn from_layers(layers: &[Layer], dev: &Device) -> Net {
        let layers = layers
            .iter()
            .map(|l| Linear {
                weight: Param::from_tensor(Tensor::from_data(
                    TensorData::new(l.weight.clone(), [l.inputs, l.outputs]),
                    dev,
                )),
                bias: Some(Param::from_tensor(Tensor::from_data(
                    TensorData::new(l.bias.clone(), [l.outputs]),
                    dev,
                ))),
            })
            .collect();
        Net { layers }
    }

    fn to_layers(&self) -> Vec<Layer> {
        self.layers
            .iter()
            .map(|l| {
                let [inputs, outputs] = l.weight.val().dims();
                let values = |t: TensorData| t.try_to_vec::<f32>().unwrap_or_default();
                Layer {
                    inputs,
                    outputs,
                    weight: values(l.weight.val().into_data()),
                    bias: l
                        .bias
                        .as_ref()
                        .map_or_else(|| vec![0.0; outputs], |b| values(b.val().into_data())),
                }
            })
            .collect()
    }
}

/// Layers of `fit.architecture` for `inputs` inputs and one output, drawn uniformly from
/// ±1/√fan-in (burn's and PyTorch's default for dense layers) by a generator seeded with
/// `fit.seed`.
fn initial(inputs: usize, fit: &Fit) -> Vec<Layer> {
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(fit.seed);
    let mut layer = |inputs: usize, outputs: usize| {
        let k = 1.0 / (inputs as f32).sqrt();
        let mut draw = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-k..k)).collect() };
        Layer {
            inputs,
            outputs,
            weight: draw(inputs * outputs),
            bias: draw(outputs),
        }
    };
    match fit.architecture {
        Architecture::Linear => vec![layer(inputs, 1)],
        Architecture::Mlp => vec![
            layer(inputs, fit.hidden.max(1)),
            layer(fit.hidden.max(1), 1),
        ],
    }
}

/// Rows per Adam step at most. A smaller training set is used whole every step; a larger
/// one (5,000 symbols × 500 days is 2.4 M rows) in batches of this many, which estimate
/// the gradient of a network of a few hundred weights closely at a fraction of the cost
/// (a full pass over 2.4 M rows costs about half a second per step here).
pub const BATCH_ROWS: usize = 65_536;

/// Fits a network to `targets` from the row-major `inputs` (`targets.len()` rows) by Adam
/// on the mean squared error, `fit.epochs` steps: each on every row when there are at most
/// [`BATCH_ROWS`], else on the next batch of a shuffled order (reshuffled once used up),
/// shuffled by a generator seeded with `fit.seed`, so a run is reproducible to the bit.
pub fn fit(inputs: &[f32], targets: &[f32], fit: &Fit) -> Vec<Layer> {
    let n = targets.len();
    let d = inputs.len().checked_div(n).unwrap_or(0);
    let dev = cpu().autodiff();
    let mut net = Net::from_layers(&initial(d, fit), &dev);
    if n == 0 {
        return net.to_layers();
    }
    let tensors = |x: Vec<f32>, y: Vec<f32>| {
        let rows = y.len();
        (
            Tensor::<2>::from_data(TensorData::new(x, [rows, d]), &dev),
            Tensor::<2>::from_data(TensorData::new(y, [rows, 1]), &dev),
        )
    };
    let whole = (n <= BATCH_ROWS).then(|| tensors(inputs.to_vec(), targets.to_vec()));
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(fit.seed.wrapping_add(1));
    let mut order: Vec<usize> = (0..n).collect();
    let mut next = n;
    let mut optimizer = AdamConfig::new().init();
    for _ in 0..fit.epochs {
        let (x, y) = match &whole {
            Some((x, y)) => (x.clone(), y.clone()),
            None => {
                if next + BATCH_ROWS > n {
                    order.shuffle(&mut rng);
                    next = 0;
                }
                let batch = &order[next..next + BATCH_ROWS];
                next += BATCH_ROWS;
                tensors(
                    batch
                        .iter()
                        .flat_map(|&i| &inputs[i * d..(i + 1) * d])
                        .copied()
                        .collect(),
                    batch.iter().map(|&i| targets[i]).collect(),
                )
            }
        };
        let loss = MseLoss::new().forward(net.forward(x), y, Reduction::Mean);
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = optimizer.step(fit.learning_rate, net, grads);
    }
    net.to_layers()
}

/// The network's output for each row of the row-major `inputs` (`rows` rows).
pub fn predict(layers: &[Layer], inputs: &[f32], rows: usize) -> Vec<f32> {
    let Some(first) = layers.first() else {
        return vec![0.0; rows];
    };
    if rows == 0 {
        return Vec::new();
    }
    let dev = cpu();
    let x = Tensor::<2>::from_data(TensorData::new(inputs.to_vec(), [rows, first.inputs]), &dev);
    Net::from_layers(layers, &dev)
        .forward(x)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap_or_else(|_| vec![0.0; rows])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, f: impl Fn(f32, f32) -> f32) -> (Vec<f32>, Vec<f32>) {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(7);
        let mut x = Vec::new();
        let mut y = Vec::new();
        for _ in 0..n {
            let (a, b) = (rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0));
            x.extend([a, b]);
            y.push(f(a, b));
        }
        (x, y)
    }

    fn mse(layers: &[Layer], x: &[f32], y: &[f32]) -> f32 {
        let p = predict(layers, x, y.len());
        p.iter().zip(y).map(|(p, y)| (p - y).powi(2)).sum::<f32>() / y.len() as f32
    }

    const LINEAR: Fit = Fit {
        architecture: Architecture::Linear,
        hidden: 0,
        epochs: 300,
        learning_rate: 0.05,
        seed: 1,
    };

    #[test]
    fn a_linear_fit_recovers_known_coefficients() {
        let (x, y) = data(400, |a, b| 2.0 * a - 0.5 * b + 0.25);
        let layers = fit(&x, &y, &LINEAR);
        assert_eq!(layers.len(), 1);
        let l = &layers[0];
        assert!(l.is_consistent());
        assert!((l.weight[0] - 2.0).abs() < 0.02, "{:?}", l.weight);
        assert!((l.weight[1] + 0.5).abs() < 0.02, "{:?}", l.weight);
        assert!((l.bias[0] - 0.25).abs() < 0.02, "{:?}", l.bias);
        // Predicting is the same forward pass: the fitted line, row by row.
        let p = predict(&layers, &[1.0, 1.0, 0.0, 0.0], 2);
        assert!(
            (p[0] - 1.75).abs() < 0.05 && (p[1] - 0.25).abs() < 0.05,
            "{p:?}"
        );
    }

    /// More rows than a batch: each step sees a shuffled batch, and the fit still finds
    /// the line, the same to the bit on a second run.
    #[test]
    fn a_fit_on_more_rows_than_a_batch_recovers_the_line_reproducibly() {
        let (x, y) = data(BATCH_ROWS + 4_000, |a, b| 2.0 * a - 0.5 * b + 0.25);
        let batched = Fit {
            epochs: 150,
            ..LINEAR
        };
        let layers = fit(&x, &y, &batched);
        let l = &layers[0];
        assert!((l.weight[0] - 2.0).abs() < 0.02, "{:?}", l.weight);
        assert!((l.weight[1] + 0.5).abs() < 0.02, "{:?}", l.weight);
        assert!((l.bias[0] - 0.25).abs() < 0.02, "{:?}", l.bias);
        assert_eq!(fit(&x, &y, &batched), layers);
    }

    #[test]
    fn an_mlp_fits_what_a_line_cannot_and_the_same_seed_gives_the_same_model() {
        let (x, y) = data(400, |a, b| a.abs() + b.abs());
        let mlp = Fit {
            architecture: Architecture::Mlp,
            hidden: 16,
            epochs: 300,
            learning_rate: 0.02,
            seed: 3,
        };
        let linear = fit(&x, &y, &LINEAR);
        let nonlinear = fit(&x, &y, &mlp);
        let (lin, non) = (mse(&linear, &x, &y), mse(&nonlinear, &x, &y));
        assert!(non < lin / 4.0, "mlp {non} vs linear {lin}");
        assert_eq!(nonlinear.len(), 2);
        assert_eq!((nonlinear[0].inputs, nonlinear[0].outputs), (2, 16));
        assert_eq!(fit(&x, &y, &mlp), nonlinear, "deterministic");
    }
}
