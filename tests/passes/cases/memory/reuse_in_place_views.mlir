// RUN: fusion dce memory
// Arena buffers by first fit over live ranges: the exp kernel writes over the matmul
// result it reads last (in place); the reshape is a view of it; the sum, read while that
// storage is still live, gets bytes of its own (64-byte aligned); once the sum has read it,
// the second matmul reuses offset 0. The returned value is computed straight into its
// output array, outside the arena.
func.func @main(%x: tensor<4x3xf32>, %w: tensor<3x2xf32>, %w2: tensor<3x2xf32>) -> tensor<4x2xf32> {
  %m = "gj.matmul"(%x, %w) {transpose_a = false, transpose_b = false} : (tensor<4x3xf32>, tensor<3x2xf32>) -> tensor<4x2xf32>
  %e = "gj.exp"(%m) : (tensor<4x2xf32>) -> tensor<4x2xf32>
  %r = "gj.reshape"(%e) {shape = [8]} : (tensor<4x2xf32>) -> tensor<8xf32>
  %s = "gj.reduce_sum"(%r) {axes = [0], keepdims = false} : (tensor<8xf32>) -> tensor<f32>
  %m2 = "gj.matmul"(%x, %w2) {transpose_a = false, transpose_b = false} : (tensor<4x3xf32>, tensor<3x2xf32>) -> tensor<4x2xf32>
  %y = "gj.mul"(%m2, %s) : (tensor<4x2xf32>, tensor<f32>) -> tensor<4x2xf32>
  func.return %y : tensor<4x2xf32>
}
// CHECK:      [[M:%[0-9]+]] = "gj.matmul"(%arg0, %arg1
// CHECK-NEXT: [[E:%[0-9]+]] = "gj.fused"([[M]]
// CHECK:      [[R:%[0-9]+]] = "gj.reshape"([[E]]
// CHECK-NEXT: [[S:%[0-9]+]] = "gj.fused"([[R]]
// CHECK:      [[M2:%[0-9]+]] = "gj.matmul"(%arg0, %arg2
// CHECK-NEXT: [[Y:%[0-9]+]] = "gj.fused"([[M2]], [[S]]
// CHECK:      func.return [[Y]]
// CHECK-NEXT: }
// CHECK-NEXT: // memory: [[M]] arena offset=0 bytes=32
// CHECK-NEXT: // memory: [[E]] arena offset=0 bytes=32 over [[M]]
// CHECK-NEXT: // memory: [[R]] alias offset=0 bytes=32 views [[E]]
// CHECK-NEXT: // memory: [[S]] arena offset=64 bytes=4
// CHECK-NEXT: // memory: [[M2]] arena offset=0 bytes=32
// CHECK-NEXT: // memory: [[Y]] output bytes=32
// CHECK-NEXT: // memory: arena 68 bytes, peak live 36 bytes
