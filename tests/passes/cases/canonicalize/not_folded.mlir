// RUN: canonicalize dce
// Identities that do not hold in floating point stay: x*0 is NaN for x = inf or NaN
// (and -0.0 for negative x), x-x is NaN for x = inf. x*1 that would change the result
// type (a scalar x times ones of shape [3]) stays too.
func @main(%x: tensor<3xf64>, %s: tensor<f64>) {
  %zero = constant {value = dense<0.0> : tensor<f64>} : () -> tensor<f64>
  %ones = constant {value = dense<[1.0, 1.0, 1.0]> : tensor<3xf64>} : () -> tensor<3xf64>
  %a = mul %x, %zero : (tensor<3xf64>, tensor<f64>) -> tensor<3xf64>
  %b = sub %x, %x : (tensor<3xf64>, tensor<3xf64>) -> tensor<3xf64>
  %c = mul %s, %ones : (tensor<f64>, tensor<3xf64>) -> tensor<3xf64>
  return %a, %b, %c : (tensor<3xf64>, tensor<3xf64>, tensor<3xf64>)
}
// CHECK: mul %arg0, %{{[0-9]+}} : (tensor<3xf64>, tensor<f64>) -> tensor<3xf64>
// CHECK: sub %arg0, %arg0
// CHECK: mul %arg1, %{{[0-9]+}} : (tensor<f64>, tensor<3xf64>) -> tensor<3xf64>
// CHECK: return
