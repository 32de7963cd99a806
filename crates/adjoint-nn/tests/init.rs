//! Initializers draw from the documented distributions, reproducibly.

use adjoint_ir::{Builder, Rng};
use adjoint_nn::init::fans;
use adjoint_nn::{Initializer, Params};

fn moments(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    (mean, var.sqrt())
}

#[test]
fn fans_follow_the_pytorch_convention() {
    assert_eq!(fans(&[64, 128]), (64, 128));
    assert_eq!(fans(&[16, 3, 5, 5]), (75, 400));
    assert_eq!(fans(&[10]), (10, 10));
}

#[test]
fn standard_deviations_and_bounds_match_their_formulas() {
    let shape = [400, 600];
    let mut rng = Rng::new(1);
    let (_, std) = moments(&Initializer::HeNormal.sample(&shape, &mut rng));
    assert!((std / (2.0f64 / 400.0).sqrt() - 1.0).abs() < 0.02, "{std}");
    let (_, std) = moments(&Initializer::XavierNormal.sample(&shape, &mut rng));
    assert!((std / (2.0f64 / 1000.0).sqrt() - 1.0).abs() < 0.02, "{std}");
    let (_, std) = moments(&Initializer::LeCunNormal.sample(&shape, &mut rng));
    assert!((std / (1.0f64 / 400.0).sqrt() - 1.0).abs() < 0.02, "{std}");
    let a = (6.0f64 / 1000.0).sqrt();
    let v = Initializer::XavierUniform.sample(&shape, &mut rng);
    assert!(v.iter().all(|x| x.abs() < a));
    assert!(v.iter().any(|x| x.abs() > 0.99 * a), "fills the range");
    let v = Initializer::Uniform {
        low: 2.0,
        high: 3.0,
    }
    .sample(&[1000], &mut rng);
    assert!(v.iter().all(|x| (2.0..3.0).contains(x)));
    assert_eq!(
        Initializer::Constant(0.5).sample(&[3], &mut rng),
        vec![0.5; 3]
    );
}

#[test]
fn parameters_are_scoped_and_independent_of_declaration_order() {
    let values = |order: &[&str]| {
        let b = Builder::new("net");
        let mut p = Params::new(&b, 9);
        for &name in order {
            p.scope("block", |p| {
                p.get(name, &[4], Initializer::HeNormal);
            });
        }
        p.into_initial_values()
    };
    let ab = values(&["a", "b"]);
    let ba = values(&["b", "a"]);
    assert_eq!(ab, ba);
    assert!(ab.contains_key("block.a") && ab.contains_key("block.b"));
    assert_ne!(ab["block.a"], ab["block.b"]);
}

#[test]
fn state_is_not_trainable_and_random_inputs_are_registered() {
    use adjoint_nn::RandomKind;
    let b = Builder::new("net");
    let mut p = Params::new(&b, 1);
    p.get("w", &[2], Initializer::Ones);
    p.state("running_mean", &[2], Initializer::Zeros);
    let mask = p.scope("drop", |p| {
        p.random_input("mask", &[1000], RandomKind::DropoutMask { keep: 0.8 })
    });
    assert_eq!(p.trainable(), &["w".to_string()]);
    assert!(p.initial_values().contains_key("running_mean"));
    assert_eq!(b.graph().leaf_name(mask.id()), Some("drop.mask"));
    let draw = p.random_inputs()[0].sample(&mut Rng::new(3)).to_f64_vec();
    let kept = draw.iter().filter(|&&v| v != 0.0).count();
    assert!((700..900).contains(&kept), "{kept}");
    assert!(draw.iter().all(|&v| v == 0.0 || (v - 1.25).abs() < 1e-6));
}
