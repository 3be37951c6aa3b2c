// RUN: canonicalize dce
// An elementwise op broadcasts by itself, so an explicit broadcast of a scalar constant
// operand goes (autodiff's seeds look like this); the constant is too big to fold.
func.func @main(%x: tensor<64x64xf64>) -> tensor<64x64xf64> {
  %c = "gj.constant"() {value = dense<0.5> : tensor<f64>} : () -> tensor<f64>
  %b = "gj.broadcast_like"(%c, %x) : (tensor<f64>, tensor<64x64xf64>) -> tensor<64x64xf64>
  %y = "gj.mul"(%x, %b) : (tensor<64x64xf64>, tensor<64x64xf64>) -> tensor<64x64xf64>
  func.return %y : tensor<64x64xf64>
}
// CHECK:      %0 = "gj.constant"() {value = dense<0.5> : tensor<f64>}
// CHECK-NEXT: %1 = "gj.mul"(%arg0, %0) : (tensor<64x64xf64>, tensor<f64>) -> tensor<64x64xf64>
// CHECK-NOT:  "gj.broadcast_like"
