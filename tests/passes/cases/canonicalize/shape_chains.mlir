// RUN: canonicalize dce
// reshape(reshape(x)) is one reshape; transpose(transpose(x)) is one transpose with the
// composed permutation, or x itself when the permutations cancel.
func.func @main(%x: tensor<2x3x4xf64>) -> (tensor<24xf64>, tensor<4x3x2xf64>, tensor<2x3x4xf64>) {
  %r1 = "gj.reshape"(%x) {shape = [6, 4]} : (tensor<2x3x4xf64>) -> tensor<6x4xf64>
  %r2 = "gj.reshape"(%r1) {shape = [24]} : (tensor<6x4xf64>) -> tensor<24xf64>
  %t1 = "gj.transpose"(%x) {perm = [1, 2, 0]} : (tensor<2x3x4xf64>) -> tensor<3x4x2xf64>
  %t2 = "gj.transpose"(%t1) {perm = [1, 0, 2]} : (tensor<3x4x2xf64>) -> tensor<4x3x2xf64>
  %u1 = "gj.transpose"(%x) {perm = [2, 0, 1]} : (tensor<2x3x4xf64>) -> tensor<4x2x3xf64>
  %u2 = "gj.transpose"(%u1) {perm = [1, 2, 0]} : (tensor<4x2x3xf64>) -> tensor<2x3x4xf64>
  func.return %r2, %t2, %u2 : tensor<24xf64>, tensor<4x3x2xf64>, tensor<2x3x4xf64>
}
// CHECK:      func.func @main(%arg0: tensor<2x3x4xf64>) -> (tensor<24xf64>, tensor<4x3x2xf64>, tensor<2x3x4xf64>) {
// CHECK-NEXT:   %0 = "gj.reshape"(%arg0) {shape = [24]} : (tensor<2x3x4xf64>) -> tensor<24xf64>
// CHECK-NEXT:   %1 = "gj.transpose"(%arg0) {perm = [2, 1, 0]} : (tensor<2x3x4xf64>) -> tensor<4x3x2xf64>
// CHECK-NEXT:   func.return %0, %1, %arg0
