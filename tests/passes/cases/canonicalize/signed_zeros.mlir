// RUN: canonicalize dce
// x + 0.0 is not x when x is -0.0 (-0.0 + 0.0 = +0.0), nor is x - (-0.0): both stay.
func.func @main(%x: tensor<3xf64>) -> (tensor<3xf64>, tensor<3xf64>, tensor<3xf64>) {
  %zero = "gj.constant"() {value = dense<0.0> : tensor<f64>} : () -> tensor<f64>
  %negzero = "gj.constant"() {value = dense<-0.0> : tensor<f64>} : () -> tensor<f64>
  %a = "gj.add"(%x, %zero) : (tensor<3xf64>, tensor<f64>) -> tensor<3xf64>
  %b = "gj.add"(%zero, %x) : (tensor<f64>, tensor<3xf64>) -> tensor<3xf64>
  %c = "gj.sub"(%x, %negzero) : (tensor<3xf64>, tensor<f64>) -> tensor<3xf64>
  func.return %a, %b, %c : tensor<3xf64>, tensor<3xf64>, tensor<3xf64>
}
// CHECK: [[ZERO:%[0-9]+]] = "gj.constant"() {value = dense<0.0> : tensor<f64>}
// CHECK: [[NEGZERO:%[0-9]+]] = "gj.constant"() {value = dense<-0.0> : tensor<f64>}
// CHECK: [[A:%[0-9]+]] = "gj.add"(%arg0, [[ZERO]]
// CHECK: [[B:%[0-9]+]] = "gj.add"([[ZERO]], %arg0
// CHECK: [[C:%[0-9]+]] = "gj.sub"(%arg0, [[NEGZERO]]
// CHECK: func.return [[A]], [[B]], [[C]]
