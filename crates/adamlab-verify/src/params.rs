//! Reading a module's parameters as named host vectors.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;

/// Every float parameter of `module`, named by its path (`conv1.weight`), in visiting order.
pub fn named_params<M: Module>(module: &M) -> Vec<(String, Vec<f32>)> {
    #[derive(Default)]
    struct Collect {
        path: Vec<String>,
        params: Vec<(String, Vec<f32>)>,
    }
    impl ModuleVisitor for Collect {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let values = param
                .val()
                .to_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .expect("float parameters convert to f32");
            self.params.push((self.path.join("."), values));
        }
    }
    let mut collect = Collect::default();
    module.visit(&mut collect);
    collect.params
}

#[cfg(test)]
mod tests {
    use super::*;
    use adamlab_models::CnnConfig;
    use burn::tensor::Device;

    #[test]
    fn the_cnn_parameters_are_named_as_in_pytorch() {
        let names: Vec<String> = named_params(&CnnConfig::new().init(&Device::flex()))
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        assert_eq!(
            names,
            [
                "conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "fc1.weight",
                "fc1.bias", "fc2.weight", "fc2.bias"
            ]
        );
    }
}
