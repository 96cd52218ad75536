//! The article's CNN trained on flex through burn's `ModuleOptimizer`, as `adamlab train` steps
//! it: the fused Adam step receives θ, m and v unshared, and updates them in place.
//!
//! burn passes each parameter's inner tensor to the optimizer and moves the state out of its
//! record when no one else holds it; if either kept a second handle, the fused step would copy
//! the buffer (correct, but an allocation per tensor per step). A wrapper around adamlab's Adam
//! notes where θ, m and v live before and after every step: the same buffer means in place.

use std::sync::{Arc, Mutex};

use adamlab_models::CnnConfig;
use adamlab_optim::{Adam, AdamConfig, AdamState};
use burn::backend::{BackendTensor, DispatchTensorKind};
use burn::optim::{LearningRate, ModuleOptimizer, Optimizer};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};

/// Adam, noting for every step that had a state whether θ, m and v stayed in their buffers.
#[derive(Clone)]
struct Watched {
    adam: Adam,
    /// One entry per step with a state: (rank, θ in place, m in place, v in place).
    log: Arc<Mutex<Vec<(usize, bool, bool, bool)>>>,
}

/// The address of a flex tensor's buffer. The temporary clone is dropped before returning, so
/// looking does not make the buffer shared.
fn address<const D: usize>(tensor: &Tensor<D>) -> usize {
    #[allow(unreachable_patterns)]
    match tensor.clone().into_dispatch().kind {
        DispatchTensorKind::Flex(BackendTensor::Float(t)) => t.bytes().as_ptr() as usize,
        _ => panic!("not a flex float tensor"),
    }
}

impl Optimizer for Watched {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        theta: Tensor<D>,
        grad: Tensor<D>,
        state: Option<AdamState<D>>,
    ) -> (Tensor<D>, Option<AdamState<D>>) {
        let before = state
            .as_ref()
            .map(|s| (address(&theta), address(&s.exp_avg), address(&s.exp_avg_sq)));
        let (theta, state) = self.adam.step(lr, theta, grad, state);
        if let (Some((t, m, v)), Some(s)) = (before, &state) {
            self.log.lock().unwrap().push((
                D,
                address(&theta) == t,
                address(&s.exp_avg) == m,
                address(&s.exp_avg_sq) == v,
            ));
        }
        (theta, state)
    }

    fn to_device<const D: usize>(state: AdamState<D>, device: &Device) -> AdamState<D> {
        Adam::to_device(state, device)
    }
}

#[test]
fn training_the_cnn_on_flex_updates_theta_m_and_v_in_place_at_every_step() {
    let device = Device::flex().autodiff();
    device.seed(0);
    let mut model = CnnConfig::new().init(&device);
    let log = Arc::new(Mutex::new(Vec::new()));
    let watched = Watched {
        adam: AdamConfig::new().build().unwrap(),
        log: log.clone(),
    };
    let mut optimizer = ModuleOptimizer::from(watched);
    let batch = 8;
    let steps = 4;
    for _ in 0..steps {
        let images =
            Tensor::<4>::random([batch, 1, 28, 28], Distribution::Uniform(0.0, 1.0), &device);
        let labels = Tensor::<1, Int>::from_data(
            TensorData::new((0..batch as i64).map(|i| i % 10).collect(), [batch]),
            &device,
        );
        (model, _) = adamlab_train::classification::step(model, &mut optimizer, 1e-3, images, labels);
    }
    let log = log.lock().unwrap();
    // Eight parameter tensors (two convolutions, two linear layers, each weight and bias), each
    // stepped with a state from the second step on.
    assert_eq!(log.len(), 8 * (steps - 1), "{log:?}");
    let copied: Vec<_> = log
        .iter()
        .filter(|(_, t, m, v)| !(*t && *m && *v))
        .collect();
    assert!(
        copied.is_empty(),
        "steps that copied θ, m or v (rank, θ, m, v in place): {copied:?}"
    );
}
