//! Parameters by Hugging Face name: listing, freezing, reading gradients and writing updates.
//!
//! Burn walks a module's parameters with its path of field names; [`hf_name`] turns that path
//! into the name the checkpoint uses, and LoRA factors into peft's (`….lora_A.weight`, without
//! peft's `base_model.model.` prefix), through llm-core's architecture table.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor, TensorData};
use llm_core::CausalLm;

/// Host copies of parameters by name: `(shape, values)`.
pub type HostTensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// Flattened gradients (or any per-parameter tensors) by name.
pub type Gradients<B> = BTreeMap<String, Tensor<B, 1>>;

/// The Hugging Face name of the parameter at Burn's module `path`, from llm-core's
/// architecture table ([`llm_core::model::arch::param_name`]).
pub fn hf_name(path: &[String]) -> String {
    llm_core::model::arch::param_name(path)
}

/// Whether `name` is a LoRA factor.
pub fn is_lora(name: &str) -> bool {
    name.contains(".lora_A.") || name.contains(".lora_B.")
}

/// One parameter of a model.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamInfo {
    /// Hugging Face name.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Whether the optimizer updates it (it requires gradients).
    pub trainable: bool,
}

impl ParamInfo {
    /// Number of scalars.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

#[derive(Default)]
struct Path(Vec<String>);

impl Path {
    fn enter(&mut self, name: &str) {
        self.0.push(name.to_string());
    }
    fn exit(&mut self) {
        self.0.pop();
    }
    fn name(&self) -> String {
        hf_name(&self.0)
    }
}

struct Lister {
    path: Path,
    out: Vec<ParamInfo>,
}

impl<B: Backend> ModuleVisitor<B> for Lister {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.enter(name);
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.exit();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let t = param.val();
        self.out.push(ParamInfo { name: self.path.name(), shape: t.dims().to_vec(), trainable: t.is_require_grad() });
    }
}

/// Every float parameter with its name, shape and whether it trains, in module order.
pub fn param_infos<B: Backend>(model: &CausalLm<B>) -> Vec<ParamInfo> {
    let mut v = Lister { path: Path::default(), out: vec![] };
    model.visit(&mut v);
    v.out
}

struct Mapper<F> {
    path: Path,
    f: F,
}

impl<B: Backend, F: FnMut(&str, Tensor<B, 1>, bool) -> Option<(Tensor<B, 1>, bool)>> ModuleMapper<B> for Mapper<F> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.enter(name);
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.exit();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let shape = tensor.shape();
        let require_grad = tensor.is_require_grad();
        let flat = tensor.clone().reshape([shape.num_elements()]);
        let tensor = match (self.f)(&self.path.name(), flat, require_grad) {
            Some((new, require_grad)) => new.reshape(shape).set_require_grad(require_grad),
            None => tensor,
        };
        Param::from_mapped_value(id, tensor, mapper)
    }
}

/// Rewrites parameters: `f(name, flat value, requires_grad)` returns the new flat value and
/// whether it requires gradients, or `None` to keep the parameter as it is.
pub fn map_params<B: Backend>(
    model: CausalLm<B>,
    f: impl FnMut(&str, Tensor<B, 1>, bool) -> Option<(Tensor<B, 1>, bool)>,
) -> CausalLm<B> {
    model.map(&mut Mapper { path: Path::default(), f })
}

/// Marks exactly the parameters `trainable(name)` accepts as requiring gradients; every other
/// parameter is frozen (no gradient, never given to the optimizer).
pub fn set_trainable<B: Backend>(model: CausalLm<B>, trainable: impl Fn(&str) -> bool) -> CausalLm<B> {
    map_params(model, |name, t, _| Some((t.detach(), trainable(name))))
}

struct GradReader<'a, B: AutodiffBackend> {
    path: Path,
    grads: &'a B::Gradients,
    out: Gradients<B::InnerBackend>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for GradReader<'_, B> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.enter(name);
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.exit();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = param.val().grad(self.grads) {
            let n = g.shape().num_elements();
            self.out.insert(self.path.name(), g.reshape([n]));
        }
    }
}

/// The gradient of every parameter that has one, flattened, by name.
pub fn gradients<B: AutodiffBackend>(model: &CausalLm<B>, grads: &B::Gradients) -> Gradients<B::InnerBackend> {
    let mut v = GradReader::<B> { path: Path::default(), grads, out: BTreeMap::new() };
    model.visit(&mut v);
    v.out
}

/// `sqrt(Σ g²)` over every tensor, accumulated in f64 (torch's `clip_grad_norm_` total norm).
pub fn global_norm<B: Backend>(grads: &Gradients<B>) -> f64 {
    grads
        .values()
        .map(|g| g.clone().cast(burn::tensor::DType::F32).square().sum().into_scalar().elem::<f64>())
        .sum::<f64>()
        .sqrt()
}

/// Host copies `(shape, values)` of the parameters `select(name)` accepts.
pub fn read_params<B: Backend>(model: &CausalLm<B>, select: impl Fn(&str) -> bool) -> HostTensors {
    struct Reader<F> {
        path: Path,
        select: F,
        out: HostTensors,
    }
    impl<B: Backend, F: Fn(&str) -> bool> ModuleVisitor<B> for Reader<F> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.enter(name);
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.exit();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let name = self.path.name();
            if (self.select)(&name) {
                self.out.insert(name, llm_core::io::host_f32(param.val()));
            }
        }
    }
    let mut r = Reader { path: Path::default(), select, out: BTreeMap::new() };
    model.visit(&mut r);
    r.out
}

/// Replaces the parameters named in `values` (shapes must match; checked by the caller with
/// [`param_infos`]), keeping each one's gradient flag and dtype.
pub fn write_params<B: Backend>(model: CausalLm<B>, values: &HostTensors) -> CausalLm<B> {
    map_params(model, |name, t, require_grad| {
        let (_, v) = values.get(name)?;
        let new = Tensor::<B, 1>::from_data(TensorData::new(v.clone(), [v.len()]), (&t.device(), t.dtype()));
        Some((new, require_grad))
    })
}
