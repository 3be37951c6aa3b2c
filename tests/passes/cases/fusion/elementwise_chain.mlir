// RUN: fusion dce
// relu(x * 2 + 1): a chain of elementwise ops is one fused op; its scalar constants are
// copied into the region, so the kernel's only input is x.
func @main(%x: tensor<4x8xf32>) {
  %two = constant {value = dense<2.0> : tensor<f32>} : () -> tensor<f32>
  %one = constant {value = dense<1.0> : tensor<f32>} : () -> tensor<f32>
  %zero = constant {value = dense<0.0> : tensor<f32>} : () -> tensor<f32>
  %a = mul %x, %two : (tensor<4x8xf32>, tensor<f32>) -> tensor<4x8xf32>
  %b = add %a, %one : (tensor<4x8xf32>, tensor<f32>) -> tensor<4x8xf32>
  %c = maximum %b, %zero : (tensor<4x8xf32>, tensor<f32>) -> tensor<4x8xf32>
  return %c : (tensor<4x8xf32>)
}
// CHECK:      func @main(%arg0: tensor<4x8xf32>) {
// CHECK-NEXT:   [[F:%[0-9]+]] = fused %arg0 : (tensor<4x8xf32>) -> tensor<4x8xf32> {
// CHECK-NEXT:   ^bb0([[X:%arg[0-9]+]]: tensor<4x8xf32>):
// CHECK-NEXT:     [[TWO:%[0-9]+]] = constant {value = dense<2.0> : tensor<f32>}
// CHECK-NEXT:     [[A:%[0-9]+]] = mul [[X]], [[TWO]]
// CHECK-NEXT:     [[ONE:%[0-9]+]] = constant {value = dense<1.0> : tensor<f32>}
// CHECK-NEXT:     [[B:%[0-9]+]] = add [[A]], [[ONE]]
// CHECK-NEXT:     [[ZERO:%[0-9]+]] = constant {value = dense<0.0> : tensor<f32>}
// CHECK-NEXT:     [[C:%[0-9]+]] = maximum [[B]], [[ZERO]]
// CHECK-NEXT:     yield [[C]] : (tensor<4x8xf32>)
// CHECK-NEXT:   }
// CHECK-NEXT:   return [[F]]
