// RUN: canonicalize dce
// Identities that do not hold in floating point stay: x*0 is NaN for x = inf or NaN
// (and -0.0 for negative x), x-x is NaN for x = inf. x*1 that would change the result
// type (a scalar x times ones of shape [3]) stays too.
func.func @main(%x: tensor<3xf64>, %s: tensor<f64>) -> (tensor<3xf64>, tensor<3xf64>, tensor<3xf64>) {
  %zero = "gj.constant"() {value = dense<0.0> : tensor<f64>} : () -> tensor<f64>
  %ones = "gj.constant"() {value = dense<1.0> : tensor<3xf64>} : () -> tensor<3xf64>
  %a = "gj.mul"(%x, %zero) : (tensor<3xf64>, tensor<f64>) -> tensor<3xf64>
  %b = "gj.sub"(%x, %x) : (tensor<3xf64>, tensor<3xf64>) -> tensor<3xf64>
  %c = "gj.mul"(%s, %ones) : (tensor<f64>, tensor<3xf64>) -> tensor<3xf64>
  func.return %a, %b, %c : tensor<3xf64>, tensor<3xf64>, tensor<3xf64>
}
// CHECK: "gj.mul"(%arg0, %{{[0-9]+}}) : (tensor<3xf64>, tensor<f64>) -> tensor<3xf64>
// CHECK: "gj.sub"(%arg0, %arg0
// CHECK: "gj.mul"(%arg1, %{{[0-9]+}}) : (tensor<f64>, tensor<3xf64>) -> tensor<3xf64>
// CHECK: func.return
