// RUN: canonicalize
// Broadcasting a constant to a big shape is not folded into a big literal: the broadcast
// stays (kernels broadcast for free). A small one folds.
func @main() {
  %c = constant {value = dense<2.0> : tensor<f64>} : () -> tensor<f64>
  %big = broadcast_to %c {shape = [100, 100]} : (tensor<f64>) -> tensor<100x100xf64>
  %small = broadcast_to %c {shape = [2, 2]} : (tensor<f64>) -> tensor<2x2xf64>
  return %big, %small : (tensor<100x100xf64>, tensor<2x2xf64>)
}
// CHECK: [[BIG:%[0-9]+]] = broadcast_to %0 {shape = [100, 100]}
// CHECK: [[SMALL:%[0-9]+]] = constant {value = dense<[[2.0, 2.0], [2.0, 2.0]]> : tensor<2x2xf64>}
// CHECK: return [[BIG]], [[SMALL]]
