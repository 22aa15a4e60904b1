//! Building blocks of the ONNX graphs native models become: attributes, nodes,
//! value infos, initializers and the model around a graph.

use tract_onnx::pb;

/// The model around `graph`: ONNX opset 15, ai.onnx.ml opset 3.
pub fn model(producer: &str, graph: pb::GraphProto) -> pb::ModelProto {
    pb::ModelProto {
        ir_version: 8,
        producer_name: producer.into(),
        opset_import: vec![
            pb::OperatorSetIdProto {
                domain: String::new(),
                version: 15,
            },
            pb::OperatorSetIdProto {
                domain: "ai.onnx.ml".into(),
                version: 3,
            },
        ],
        graph: Some(graph),
        ..Default::default()
    }
}

/// A float32 constant of shape `dims`.
pub fn initializer(name: &str, dims: &[usize], values: Vec<f32>) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: 1,
        float_data: values,
        ..Default::default()
    }
}

pub enum Attr {
    Int(i64),
    Ints(Vec<i64>),
    Floats(Vec<f32>),
    String(String),
    Strings(Vec<String>),
}

impl Attr {
    pub fn named(self, name: String) -> pb::AttributeProto {
        use pb::attribute_proto::AttributeType as T;
        let mut a = pb::AttributeProto {
            name,
            ..Default::default()
        };
        match self {
            Attr::Int(i) => {
                a.r#type = T::Int as i32;
                a.i = i;
            }
            Attr::Ints(v) => {
                a.r#type = T::Ints as i32;
                a.ints = v;
            }
            Attr::Floats(v) => {
                a.r#type = T::Floats as i32;
                a.floats = v;
            }
            Attr::String(s) => {
                a.r#type = T::String as i32;
                a.s = s.into_bytes();
            }
            Attr::Strings(v) => {
                a.r#type = T::Strings as i32;
                a.strings = v.into_iter().map(String::into_bytes).collect();
            }
        }
        a
    }
}

/// List attributes filled one entry at a time, in the order first named.
#[derive(Default)]
pub struct Attrs(pub Vec<(String, Attr)>);

impl Attrs {
    fn entry(&mut self, name: &str, empty: fn() -> Attr) -> &mut Attr {
        let i = match self.0.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                self.0.push((name.to_owned(), empty()));
                self.0.len() - 1
            }
        };
        &mut self.0[i].1
    }

    pub fn ints(&mut self, name: &str, v: i64) {
        if let Attr::Ints(list) = self.entry(name, || Attr::Ints(vec![])) {
            list.push(v);
        }
    }

    pub fn floats(&mut self, name: &str, v: f32) {
        if let Attr::Floats(list) = self.entry(name, || Attr::Floats(vec![])) {
            list.push(v);
        }
    }

    pub fn strings(&mut self, name: &str, v: &str) {
        if let Attr::Strings(list) = self.entry(name, || Attr::Strings(vec![])) {
            list.push(v.to_owned());
        }
    }
}

pub fn node(
    op: &str,
    domain: &str,
    inputs: &[&str],
    outputs: &[&str],
    attribute: Vec<pb::AttributeProto>,
) -> pb::NodeProto {
    pb::NodeProto {
        op_type: op.into(),
        domain: domain.into(),
        name: format!("{op}_{}", outputs[0]),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute,
        ..Default::default()
    }
}

/// A tensor of `elem` (ONNX element type code) shaped `[N, dims…]`.
pub fn value_info(name: &str, elem: i32, dims: &[usize]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension::Value, Dimension};
    let mut dim = vec![Dimension {
        value: Some(Value::DimParam("N".into())),
        ..Default::default()
    }];
    dim.extend(dims.iter().map(|&d| Dimension {
        value: Some(Value::DimValue(d as i64)),
        ..Default::default()
    }));
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: elem,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}
