// RUN: canonicalize dce
// x + 0.0 is not x when x is -0.0 (-0.0 + 0.0 = +0.0), nor is x - (-0.0): both stay.
func @main(%x: tensor<3xf64>) {
  %zero = constant {value = dense<0.0> : tensor<f64>} : () -> tensor<f64>
  %negzero = constant {value = dense<-0.0> : tensor<f64>} : () -> tensor<f64>
  %a = add %x, %zero : (tensor<3xf64>, tensor<f64>) -> tensor<3xf64>
  %b = add %zero, %x : (tensor<f64>, tensor<3xf64>) -> tensor<3xf64>
  %c = sub %x, %negzero : (tensor<3xf64>, tensor<f64>) -> tensor<3xf64>
  return %a, %b, %c : (tensor<3xf64>, tensor<3xf64>, tensor<3xf64>)
}
// CHECK: [[ZERO:%[0-9]+]] = constant {value = dense<0.0> : tensor<f64>}
// CHECK: [[NEGZERO:%[0-9]+]] = constant {value = dense<-0.0> : tensor<f64>}
// CHECK: [[A:%[0-9]+]] = add %arg0, [[ZERO]]
// CHECK: [[B:%[0-9]+]] = add [[ZERO]], %arg0
// CHECK: [[C:%[0-9]+]] = sub %arg0, [[NEGZERO]]
// CHECK: return [[A]], [[B]], [[C]]
