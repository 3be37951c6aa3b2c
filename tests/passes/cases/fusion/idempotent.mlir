// RUN: fusion fusion dce
// A second fusion run leaves kernels alone: nothing is fused inside a fused op, and a
// loop body's kernel is not wrapped again either.
func @main(%x: tensor<8xf64>) {
  %e = exp %x : (tensor<8xf64>) -> tensor<8xf64>
  %t = tanh %e : (tensor<8xf64>) -> tensor<8xf64>
  %w = while %t : (tensor<8xf64>) -> tensor<8xf64> {
  ^bb0(%a: tensor<8xf64>):
    %s = reduce_sum %a {axes = [0], keepdims = false} : (tensor<8xf64>) -> tensor<f64>
    %ten = constant {value = dense<10.0> : tensor<f64>} : () -> tensor<f64>
    %go = less %s, %ten : (tensor<f64>, tensor<f64>) -> tensor<i1>
    condition %go : (tensor<i1>)
  } do {
  ^bb0(%b: tensor<8xf64>):
    %n = exp %b : (tensor<8xf64>) -> tensor<8xf64>
    yield %n : (tensor<8xf64>)
  }
  return %w : (tensor<8xf64>)
}
// CHECK:      [[F:%[0-9]+]] = fused %arg0
// CHECK-NEXT: ^bb0([[X:%arg[0-9]+]]: tensor<8xf64>):
// CHECK-NEXT:   [[E:%[0-9]+]] = exp [[X]]
// CHECK-NEXT:   [[T:%[0-9]+]] = tanh [[E]]
// CHECK-NEXT:   yield [[T]]
// CHECK:      while [[F]]
// CHECK:      } do {
// CHECK-NEXT: ^bb0([[B:%arg[0-9]+]]: tensor<8xf64>):
// CHECK-NEXT:   [[N:%[0-9]+]] = fused [[B]]
// CHECK-NEXT:   ^bb0([[B2:%arg[0-9]+]]: tensor<8xf64>):
// CHECK-NEXT:     exp [[B2]]
// CHECK-NEXT:     yield
// CHECK-NEXT:   }
// CHECK-NEXT:   yield [[N]]
// CHECK-NOT:  fused
