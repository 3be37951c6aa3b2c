// RUN: canonicalize dce
// An elementwise op broadcasts by itself, so an explicit broadcast of a scalar constant
// operand goes (autodiff's seeds look like this); the constant is too big to fold.
func @main(%x: tensor<64x64xf64>) {
  %c = constant {value = dense<0.5> : tensor<f64>} : () -> tensor<f64>
  %b = broadcast_like %c, %x : (tensor<f64>, tensor<64x64xf64>) -> tensor<64x64xf64>
  %y = mul %x, %b : (tensor<64x64xf64>, tensor<64x64xf64>) -> tensor<64x64xf64>
  return %y : (tensor<64x64xf64>)
}
// CHECK:      %0 = constant {value = dense<0.5> : tensor<f64>}
// CHECK-NEXT: %1 = mul %arg0, %0 : (tensor<64x64xf64>, tensor<f64>) -> tensor<64x64xf64>
// CHECK-NOT:  broadcast_like
