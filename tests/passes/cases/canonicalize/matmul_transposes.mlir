// RUN: canonicalize dce
// A swap of the last two axes feeding a matmul becomes the matmul's transpose flag (BLAS
// reads the operand transposed) and the copy goes; a transposed operand whose flag is
// already set cancels it. Other permutations, and a transpose that is still used
// elsewhere, stay.
func.func @main(%a: tensor<4x3xf32>, %b: tensor<5x4xf32>, %c: tensor<2x3x4xf32>, %w: tensor<3x5xf32>) -> (tensor<3x5xf32>, tensor<3x5xf32>, tensor<3x4xf32>, tensor<4x3x2xf32>, tensor<2x4x5xf32>, tensor<4x5xf32>) {
  %at = "gj.transpose"(%a) {perm = [1, 0]} : (tensor<4x3xf32>) -> tensor<3x4xf32>
  %bt = "gj.transpose"(%b) {perm = [1, 0]} : (tensor<5x4xf32>) -> tensor<4x5xf32>
  %p = "gj.matmul"(%at, %bt) {transpose_a = false, transpose_b = false} : (tensor<3x4xf32>, tensor<4x5xf32>) -> tensor<3x5xf32>
  %q = "gj.matmul"(%at, %b) {transpose_a = false, transpose_b = true} : (tensor<3x4xf32>, tensor<5x4xf32>) -> tensor<3x5xf32>
  %wt = "gj.transpose"(%w) {perm = [1, 0]} : (tensor<3x5xf32>) -> tensor<5x3xf32>
  %r = "gj.matmul"(%wt, %b) {transpose_a = true, transpose_b = false} : (tensor<5x3xf32>, tensor<5x4xf32>) -> tensor<3x4xf32>
  %ct = "gj.transpose"(%c) {perm = [2, 1, 0]} : (tensor<2x3x4xf32>) -> tensor<4x3x2xf32>
  %cb = "gj.transpose"(%c) {perm = [0, 2, 1]} : (tensor<2x3x4xf32>) -> tensor<2x4x3xf32>
  %s = "gj.matmul"(%cb, %w) {transpose_a = false, transpose_b = false} : (tensor<2x4x3xf32>, tensor<3x5xf32>) -> tensor<2x4x5xf32>
  func.return %p, %q, %r, %ct, %s, %bt : tensor<3x5xf32>, tensor<3x5xf32>, tensor<3x4xf32>, tensor<4x3x2xf32>, tensor<2x4x5xf32>, tensor<4x5xf32>
}
// CHECK:      [[BT:%[0-9]+]] = "gj.transpose"(%arg1) {perm = [1, 0]}
// CHECK-NEXT: [[P:%[0-9]+]] = "gj.matmul"(%arg0, %arg1) {transpose_a = true, transpose_b = true}
// CHECK-NEXT: [[Q:%[0-9]+]] = "gj.matmul"(%arg0, %arg1) {transpose_a = true, transpose_b = true}
// CHECK-NEXT: [[R:%[0-9]+]] = "gj.matmul"(%arg3, %arg1) {transpose_a = false, transpose_b = false}
// CHECK-NEXT: [[CT:%[0-9]+]] = "gj.transpose"(%arg2) {perm = [2, 1, 0]}
// CHECK-NEXT: [[S:%[0-9]+]] = "gj.matmul"(%arg2, %arg3) {transpose_a = true, transpose_b = false}
// CHECK-NEXT: func.return [[P]], [[Q]], [[R]], [[CT]], [[S]], [[BT]]
